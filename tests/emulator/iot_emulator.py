"""The AWS emulator as the bridge's tests, `make dev` and the bench use it:
moto, with AWS IoT's certificates made real and its requests served one at
a time (so that conditional writes are atomic, as in AWS).

moto issues, for a CSR, a certificate for an unrelated RSA key of its own,
so no certificate it hands out fits the private key the bridge delivers.
Here `CreateCertificateFromCsr` signs the CSR's own public key with a test
CA, as AWS IoT's CA would, a certificate's id is the SHA-256 of its DER as
in AWS, and `DescribeEndpoint` names the local MQTT broker that plays the
IoT data endpoint (`tests/integration/src/broker.rs`).

    iot_emulator.py serve [moto_server arguments]   run moto, patched
    iot_emulator.py forkserver SOCKET               serve emulators from one
        warm process: moto and the services the bridge uses imported once,
        each emulator a fork of it (see `forkserver` below)
    iot_emulator.py crl MOTO_URL                    write the CRL of every
        issued certificate that is not ACTIVE now (INACTIVE or deleted)
    iot_emulator.py server-cert HOST...             the broker's certificate

Everything lives in the directory $EMULATOR_CA_DIR: the CA (`ca.pem`,
`ca.key`, made on first use), one file per issued certificate
(`issued/<serial>.pem`), `crl.pem`, `server.pem` and `server.key`.
$EMULATOR_IOT_ENDPOINT is the host `DescribeEndpoint` answers (default
`localhost`).
"""

import datetime
import json
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DIR = Path(os.environ.get("EMULATOR_CA_DIR", "target/emulator-ca"))
ENDPOINT = os.environ.get("EMULATOR_IOT_ENDPOINT", "localhost")


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def ca():
    """The test CA (made on first use): its certificate and key."""
    DIR.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = DIR / "ca.pem", DIR / "ca.key"
    if not cert_path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mender-iot-bridge test CA")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now() - datetime.timedelta(days=1))
            .not_valid_after(now() + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        # Written last: its presence says the CA is complete.
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return cert, key


def issue(subject, public_key, sans=None):
    """A certificate for `public_key`, signed by the test CA."""
    ca_cert, ca_key = ca()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - datetime.timedelta(minutes=5))
        .not_valid_after(datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def serve(arguments):
    from moto.core.responses import ActionResult
    from moto.iot import models, responses
    from moto.server import main

    global DIR
    DIR = Path(os.environ.get("EMULATOR_CA_DIR", DIR))

    def create_certificate_from_csr(self, csr, set_as_active):
        request = x509.load_pem_x509_csr(csr.encode())
        if not request.is_signature_valid:
            raise models.InvalidRequestException("the CSR's signature is not valid")
        cert = issue(request.subject, request.public_key())
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        issued = DIR / "issued"
        issued.mkdir(parents=True, exist_ok=True)
        (issued / f"{cert.serial_number:x}.pem").write_text(pem)
        return self.register_certificate(
            pem, ca_certificate_pem=None, set_as_active=set_as_active, status="INACTIVE"
        )

    def describe_endpoint(self, endpoint_type):
        endpoint = models.FakeEndpoint(endpoint_type, self.region_name)
        if endpoint_type == "iot:Data-ATS":
            endpoint.endpoint = ENDPOINT
        return endpoint

    def certificate_id(self, certificate_pem):
        # AWS's id: the SHA-256 of the certificate's DER (moto hashes the
        # PEM text unless told otherwise); a PEM that is no certificate
        # keeps moto's id.
        try:
            return self.compute_der_cert_id(certificate_pem)
        except ValueError:
            return self.compute_pem_cert_id(certificate_pem)

    def list_certificates(self):
        # AWS pages the account's certificates (`pageSize`, at most 250,
        # and a `marker`); moto answers all of them at once, which no
        # bridge would ever see from AWS (and at 100,000 certificates is
        # one 20 MB answer). The marker is the position in moto's order.
        page_size = min(self._get_int_param("pageSize") or 25, 250)
        start = int(self._get_param("marker") or 0)
        certificates = list(self.iot_backend.list_certificates())
        page = certificates[start : start + page_size]
        body = {"certificates": [c.to_dict() for c in page]}
        if start + page_size < len(certificates):
            body["nextMarker"] = str(start + page_size)
        return ActionResult(body)

    ca()
    models.FakeCertificate.compute_cert_id = certificate_id
    responses.IoTResponse.list_certificates = list_certificates
    models.IoTBackend.create_certificate_from_csr = create_certificate_from_csr
    models.IoTBackend.describe_endpoint = describe_endpoint
    quicken_moto()
    one_request_at_a_time()
    sys.argv = ["moto_server", *arguments]
    sys.exit(main())


def quicken_moto():
    """moto answers every request after work that depends on nothing the
    request carries: it lists its own package directory to route the Host
    header, inspects the handler class for its methods, and logs a line the
    tests never read. Profiled (py-spy) under the fault matrix, that was
    about a third of the emulator's CPU time. The answers themselves are
    unchanged: the listings are cached, and only the per-request log line
    is dropped (errors and the start-up line are still logged)."""
    import functools

    from moto import backends
    from moto.core import responses, utils
    from werkzeug.serving import WSGIRequestHandler

    index_things_and_certificates()
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    responses.method_names_from_class = functools.lru_cache(maxsize=None)(
        utils.method_names_from_class
    )
    WSGIRequestHandler.log_request = lambda *_args, **_kwargs: None


def index_things_and_certificates():
    """moto finds a Thing by name, and a certificate by ARN, by scanning
    every one (and deleting a certificate scans every attachment, finding
    each one's certificate by a scan): at the bench's 100,000 devices one
    DeleteCertificate took longer than the bridge's attempt timeout. Both
    are keyed by what the name and the ARN are made of, so they are looked
    up instead; the answers are the same."""
    from moto.iot import models
    from moto.utilities.utils import get_partition

    find_principal = models.IoTBackend._get_principal

    def describe_thing(self, thing_name):
        partition = get_partition(self.region_name)
        arn = f"arn:{partition}:iot:{self.region_name}:{self.account_id}:thing/{thing_name}"
        thing = self.things.get(arn)
        if thing is None or thing.thing_name != thing_name:
            raise models.ResourceNotFoundException()
        return thing

    def get_principal(self, principal_arn):
        if ":cert/" in principal_arn:
            certificate = self.certificates.get(principal_arn.rsplit("/", 1)[-1])
            if certificate is None or certificate.arn != principal_arn:
                raise models.ResourceNotFoundException()
            return certificate
        return find_principal(self, principal_arn)

    models.IoTBackend.describe_thing = describe_thing
    models.IoTBackend._get_principal = get_principal


def one_request_at_a_time():
    """AWS's conditional writes are atomic; moto's are a check, then a
    write, in Python, so two requests on two server threads can both pass
    the check. Seen: two invocations both took one device's lease (a
    DynamoDB PutItem on `attribute_not_exists`) and both provisioned the
    device, leaving an ACTIVE certificate nobody was given. Serving one
    request at a time makes every operation atomic, as in AWS; moto's work
    is CPU-bound under one interpreter lock anyway, and the tests' delays
    are injected by their proxies, outside this process."""
    import threading

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    serving = threading.Lock()
    dispatch = DomainDispatcherApplication.__call__

    def serialized(self, environ, start_response):
        with serving:
            if environ.get("PATH_INFO") == SEED_PATH:
                return seed_fleet(environ, start_response)
            return dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = serialized


SEED_PATH = "/_emulator/seed-fleet"


def seed_fleet(environ, start_response):
    """The bench's fleet (`tests/bench`, section `fleet`): Things marked as
    an integration's, each with its ACTIVE certificate attached and the
    device policy on it, put into moto's IoT backend directly. Through the
    API, 100,000 devices are 400,000 requests, most of which cost moto a
    scan of every Thing or certificate. The body is JSON: `account`,
    `region`, `policy`, `attributes` (every Thing's), `devices` (`name`,
    `certificate_pem`)."""
    from moto.iot import models

    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length))
    backend = models.iot_backends[body["account"]][body["region"]]
    policy = backend.get_policy(body["policy"])
    account, region = backend.account_id, backend.region_name
    for device in body["devices"]:
        thing = models.FakeThing(device["name"], None, dict(body["attributes"]), account, region)
        backend.things[thing.arn] = thing
        certificate = models.FakeCertificate(device["certificate_pem"], "ACTIVE", account, region)
        backend.certificates[certificate.certificate_id] = certificate
        backend.principal_things[(certificate.arn, thing.thing_name)] = (certificate, thing)
        backend.principal_policies[(certificate.arn, policy.name)] = (certificate, policy)
    start_response("204 No Content", [])
    return [b""]


# The services the bridge and its tests call: imported before forking, so
# that no emulator pays for importing them (moto imports a service on its
# first request otherwise).
WARM = ("iot", "iotdata", "dynamodb", "secretsmanager", "events", "sts")


def forkserver(socket_path):
    """Starting moto costs about a second of CPU in imports; a test suite
    starts hundreds of emulators. This process imports once and forks one
    emulator per request on the Unix socket SOCKET.

    A request is one line of JSON: `{"env": {...}, "args": [...]}` (the
    emulator's environment additions, its moto_server arguments). The
    emulator's stderr is the connection (moto's log, `Running on …`
    included), and it exits when the connection closes: the test's
    emulator is dropped, or the test process has ended. This process ends
    when its stdin closes (the test process that started it has ended);
    the kernel reaps the emulators."""
    import importlib
    import json
    import signal
    import socket
    import threading

    import moto.server  # noqa: F401

    for service in WARM:
        importlib.import_module(f"moto.{service}.models")
        importlib.import_module(f"moto.{service}.urls")
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)

    def end_with_the_test_process():
        sys.stdin.read()
        os.unlink(socket_path)
        os._exit(0)

    threading.Thread(target=end_with_the_test_process, daemon=True).start()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path)
    server.listen(16)
    while True:
        connection, _ = server.accept()
        with connection.makefile("r") as lines:
            request = json.loads(lines.readline())
        if os.fork() == 0:
            server.close()
            os.environ.update(request["env"])
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            os.dup2(null, 1)
            os.dup2(connection.fileno(), 2)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            # Nothing more is sent on the connection: end of file is its close.
            threading.Thread(
                target=lambda: (connection.recv(1), os._exit(0)), daemon=True
            ).start()
            serve(request["args"])
        connection.close()


def crl(moto_url):
    """Revokes every issued certificate that moto does not hold ACTIVE."""
    import boto3

    active = set()
    for region in os.environ.get("EMULATOR_REGIONS", "us-east-1 eu-west-1").split():
        iot = boto3.client(
            "iot",
            endpoint_url=moto_url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        marker = None
        while True:
            page = iot.list_certificates(pageSize=250, **({"marker": marker} if marker else {}))
            for listed in page["certificates"]:
                if listed["status"] == "ACTIVE":
                    pem = iot.describe_certificate(certificateId=listed["certificateId"])
                    cert = x509.load_pem_x509_certificate(
                        pem["certificateDescription"]["certificatePem"].encode()
                    )
                    active.add(cert.serial_number)
            marker = page.get("nextMarker")
            if not marker:
                break
    ca_cert, ca_key = ca()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now() - datetime.timedelta(minutes=1))
        .next_update(now() + datetime.timedelta(days=1))
    )
    issued = DIR / "issued"
    for path in sorted(issued.glob("*.pem")) if issued.exists() else []:
        serial = int(path.stem, 16)
        if serial not in active:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now() - datetime.timedelta(minutes=1))
                .build()
            )
    revocations = builder.sign(ca_key, hashes.SHA256())
    temporary = DIR / "crl.pem.new"
    temporary.write_bytes(revocations.public_bytes(serialization.Encoding.PEM))
    temporary.replace(DIR / "crl.pem")


def server_cert(hosts):
    """The broker's certificate, for these host names and addresses."""
    import ipaddress

    sans = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    cert = issue(name, key.public_key(), sans)
    (DIR / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (DIR / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


if __name__ == "__main__":
    command, *rest = sys.argv[1:] or ["serve"]
    if command == "serve":
        serve(rest)
    elif command == "forkserver" and len(rest) == 1:
        forkserver(rest[0])
    elif command == "crl" and len(rest) == 1:
        crl(rest[0])
    elif command == "server-cert" and rest:
        server_cert(rest)
    else:
        sys.exit(__doc__)
