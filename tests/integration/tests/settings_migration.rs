//! Upgrading from schema 1 (one secret per integration, readable by the
//! ingress whole) to schema 2 (a webhook secret and a credentials secret):
//! `migrate-settings copy` before the deploy, `finish` after. Webhooks and
//! lifecycle events work on the new layout, what the old functions changed
//! between the two steps is carried over, roles are claimed for their
//! organizations, and running a step again changes nothing.

use std::collections::BTreeSet;

use bridge::settings::legacy::{Migration, Report};
use bridge::settings::{AwsCredentials, IntegrationSettings, SettingsError, WebhookSecret};
use integration_tests::stack::{
    POLICY, REGION, SECRETS_PREFIX, Stack, TABLE, TENANT, settings_store,
};
use serde_json::json;

/// A schema-1 secret, as the previous version stored it.
fn schema_one(settings: &IntegrationSettings, webhook_secret: &str) -> String {
    let mut value = serde_json::to_value(settings).unwrap();
    value["schema_version"] = json!(1);
    value["webhook_secret"] = json!(webhook_secret);
    value.to_string()
}

const ROLE: &str = "arn:aws:iam::123456789012:role/mender-iot-bridge-acme";

fn ids(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

fn sorted(ids: &[String]) -> BTreeSet<String> {
    ids.iter().cloned().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_one_integrations_move_to_two_secrets() {
    let mut stack = Stack::bare().await;
    stack.seed_integration().await;
    let aws = stack.direct.clone();
    let secrets = aws_sdk_secretsmanager::Client::new(&aws);
    let credentials = settings_store::<IntegrationSettings>(&aws);
    let webhooks = settings_store::<WebhookSecret>(&aws);
    let put_legacy = |id: String, text: String| {
        let secrets = secrets.clone();
        async move {
            let name = format!("{SECRETS_PREFIX}{id}");
            if secrets
                .create_secret()
                .name(&name)
                .secret_string(&text)
                .send()
                .await
                .is_err()
            {
                secrets
                    .put_secret_value()
                    .secret_id(&name)
                    .secret_string(&text)
                    .send()
                    .await
                    .unwrap();
            }
        }
    };

    // The previous version's state: one schema-1 secret per integration;
    // acme's assumes a role, with an external id its admin chose.
    let acme = stack.integration_id.clone();
    let mut settings = IntegrationSettings::clone(&*credentials.refresh(&acme).await.unwrap());
    let with_keys = settings.clone();
    settings.aws.credentials = AwsCredentials::AssumeRole {
        role_arn: ROLE.into(),
        external_id: Some("chosen-by-acme".into()),
    };
    put_legacy(acme.clone(), schema_one(&settings, &stack.webhook_secret)).await;
    webhooks.delete(&acme, None).await.unwrap();
    credentials.delete(&acme, None).await.unwrap();
    // An integration the old functions remove after the copy.
    let removed = uuid::Uuid::new_v4().to_string();
    let mut other = with_keys.clone();
    other.integration_id.clone_from(&removed);
    other.tenant_id = "initech".into();
    put_legacy(removed.clone(), schema_one(&other, "00ff")).await;
    // Something that is not a schema-1 integration is left alone.
    let stray = uuid::Uuid::new_v4().to_string();
    put_legacy(stray.clone(), json!({"schema_version": 7}).to_string()).await;

    // Deployed before the copy, the new ingress could not verify a webhook:
    // hence copy first.
    let early = stack.mender.add_device(TENANT, "pending", None);
    let deliveries = stack.mender.accept(&early).await;
    assert!(
        !deliveries.is_empty() && deliveries.iter().all(|d| d.result == Ok(404)),
        "{deliveries:?}"
    );

    let migration = Migration::new(
        secrets.clone(),
        SECRETS_PREFIX,
        aws_sdk_dynamodb::Client::new(&aws),
        TABLE,
    );
    let copied = migration.copy().await.unwrap();
    assert_eq!(sorted(&copied.copied), ids(&[&acme, &removed]));
    assert_eq!(copied.unreadable, vec![stray.clone()]);
    assert!(copied.retired.is_empty() && copied.removed.is_empty());
    assert!(copied.role_conflicts.is_empty());

    // The new functions work on the copy.
    let device = stack.mender.add_device(TENANT, "pending", None);
    let deliveries = stack.mender.accept(&device).await;
    assert!(
        !deliveries.is_empty() && deliveries.iter().all(|d| d.result == Ok(202)),
        "{deliveries:?}"
    );
    stack.bus.wait_idle().await;
    assert_eq!(stack.thing_principals(&device).await.len(), 1);

    // Meanwhile the old functions change acme's, make globex's (with
    // acme's role: the confused deputy schema 1 allowed), remove initech's.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    settings.description = "changed before the deploy".into();
    settings.updated_at = bridge::clock::now_rfc3339();
    put_legacy(acme.clone(), schema_one(&settings, &stack.webhook_secret)).await;
    let created = uuid::Uuid::new_v4().to_string();
    let mut globex = settings.clone();
    globex.integration_id.clone_from(&created);
    globex.tenant_id = "globex".into();
    put_legacy(created.clone(), schema_one(&globex, "abcd")).await;
    secrets
        .delete_secret()
        .secret_id(format!("{SECRETS_PREFIX}{removed}"))
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();

    let finished = migration.finish().await.unwrap();
    assert_eq!(sorted(&finished.copied), ids(&[&acme, &created]));
    assert_eq!(sorted(&finished.retired), ids(&[&acme, &created]));
    assert_eq!(finished.removed, vec![removed.clone()]);
    assert_eq!(finished.unreadable, vec![stray.clone()]);
    assert_eq!(finished.role_conflicts, vec![created.clone()]);

    let acme_now = credentials.refresh(&acme).await.unwrap();
    assert_eq!(acme_now.description, "changed before the deploy");
    let globex_webhook = webhooks.refresh(&created).await.unwrap();
    assert_eq!(globex_webhook.tenant_id, "globex");
    assert_eq!(globex_webhook.webhook_secret.expose(), "abcd");
    for kind in [
        credentials.refresh(&removed).await.err(),
        webhooks.refresh(&removed).await.err(),
    ] {
        assert!(matches!(kind, Some(SettingsError::NotFound(_))), "{kind:?}");
    }
    // The schema-1 secrets are scheduled for deletion (restorable), the
    // stray one is untouched.
    let listed = secrets
        .list_secrets()
        .include_planned_deletion(true)
        .send()
        .await
        .unwrap();
    for secret in listed.secret_list() {
        let name = secret.name().unwrap();
        let Some(id) = name.strip_prefix(SECRETS_PREFIX) else {
            continue;
        };
        if id == stray {
            assert!(secret.deleted_date().is_none());
        } else if uuid::Uuid::parse_str(id).is_ok() {
            assert!(secret.deleted_date().is_some(), "{name} still live");
        }
    }

    // Acme's role is acme's now: another organization's setup with it is
    // refused.
    stack.mender.add_tenant("hooli", true);
    let hooli = stack
        .mender
        .add_user("hooli", "admin@hooli.test", &["RBAC_ROLE_PERMIT_ALL"], None);
    let hooli = stack
        .mender
        .issue_token(&hooli, std::time::Duration::from_secs(3600));
    let body = json!({"provider": "iot-core", "credentials": {"type": "aws", "aws": {
        "role_arn": ROLE, "region": REGION, "device_policy_name": POLICY}}});
    let refused = stack
        .call(
            reqwest::Method::POST,
            &integration_tests::stack::api("/integrations"),
            Some(&hooli),
            Some(&body),
        )
        .await;
    assert_eq!(refused.status, 409, "{}", refused.text);

    // Running either step again changes nothing.
    let unchanged = Report {
        unreadable: vec![stray.clone()],
        ..Report::default()
    };
    assert_eq!(migration.finish().await.unwrap(), unchanged);
    assert_eq!(migration.copy().await.unwrap(), unchanged);
    assert_eq!(
        credentials.refresh(&acme).await.unwrap().description,
        "changed before the deploy"
    );

    // And webhooks still reach the bridge.
    let later = stack.mender.add_device(TENANT, "pending", None);
    stack.mender.accept(&later).await;
    stack.bus.wait_idle().await;
    assert_eq!(stack.thing_principals(&later).await.len(), 1);
}
