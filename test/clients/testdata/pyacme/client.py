#!/usr/bin/python3
"""The python3-acme flow of the client matrix (test/clients/pyacme_test.go).

A small client written only against the API of certbot's `acme` library as Debian
packages it (python3-acme 2.1.0, josepy 1.13): acme.client.ClientV2 and
ClientNetwork, acme.messages.NewRegistration with ExternalAccountBinding,
acme.challenges (http-01, dns-01, tls-alpn-01), acme.standalone's http-01 and
tls-alpn-01 servers and
acme.crypto_util.make_csr. It is what an organisation's own tooling built on the
library would look like.

    client.py register --directory URL --account DIR --eab-kid KID --eab-hmac KEY --email ADDR
    client.py issue    --directory URL --account DIR --challenge http-01|dns-01|tls-alpn-01
                       [--http01-port N | --webroot DIR | --dns-hook URL | --tls-alpn-port N]
                       --key-out FILE --cert-out FILE NAME...
    client.py revoke   --directory URL (--account DIR | --cert-key FILE) --cert FILE --reason N

tls-alpn-01 is there to show what the library does: its challenge certificate
carries the draft OID 1.3.6.1.5.5.7.1.30.1, which an RFC 8737 server refuses.

The CA bundle comes from REQUESTS_CA_BUNDLE, as for certbot. On failure the script
prints one line to stderr and exits 1.

badNonce: the driver does not retry anything itself. ClientNetwork.post retries a
request refused with badNonce once, with a fresh nonce; RFC 8555 6.5 says clients
SHOULD retry. The matrix's chaos run (--chaos-reject-nonces 0.1) refuses every tenth
nonce, never two in a row, so the library's one retry is what that run proves; a
second retry loop here would hide whether the library retries at all.
"""
import argparse
import datetime
import os
import sys
import threading
import urllib.parse
import urllib.request

import josepy as jose
import OpenSSL
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from acme import challenges, client, crypto_util, errors, messages, standalone

USER_AGENT = "varmenne-matrix python3-acme"


def new_ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def pem_of(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def acme_client(directory_url, key, account=None):
    """ClientV2 signing with key (ES256), as account when given, else with its jwk."""
    net = client.ClientNetwork(key, account=account, alg=jose.ES256, user_agent=USER_AGENT)
    return client.ClientV2(client.ClientV2.get_directory(directory_url, net), net)


def load_account(account_dir):
    """The account key and registration resource register saved."""
    with open(os.path.join(account_dir, "key.pem"), "rb") as f:
        key = jose.JWKEC.load(f.read())
    with open(os.path.join(account_dir, "regr.json")) as f:
        regr = messages.RegistrationResource.json_loads(f.read())
    return key, regr


def register(args):
    key = jose.JWKEC(key=new_ec_key())
    acme = acme_client(args.directory, key)
    if not acme.external_account_required():
        raise RuntimeError("the directory does not announce meta.externalAccountRequired")
    eab = messages.ExternalAccountBinding.from_data(
        account_public_key=key.public_key(), kid=args.eab_kid, hmac_key=args.eab_hmac,
        directory=acme.directory)
    regr = acme.new_account(messages.NewRegistration.from_data(
        email=args.email, terms_of_service_agreed=True, external_account_binding=eab))
    os.makedirs(args.account, mode=0o700, exist_ok=True)
    write_private(os.path.join(args.account, "key.pem"), pem_of(key.key))
    with open(os.path.join(args.account, "regr.json"), "w") as f:
        f.write(regr.json_dumps())
    print(regr.uri)


class Http01Webroot:
    """Writes key authorisations where another web server serves them."""

    def __init__(self, webroot):
        self.dir = os.path.join(webroot, ".well-known", "acme-challenge")
        self.files = []

    def add(self, name, chall, response, validation):
        path = os.path.join(self.dir, chall.encode("token"))
        with open(path, "w") as f:
            f.write(validation)
        self.files.append(path)

    def start(self):
        pass

    def stop(self):
        for path in self.files:
            os.remove(path)


class Http01Standalone:
    """The library's own http-01 server (acme.standalone), as certbot --standalone."""

    def __init__(self, port):
        self.port = port
        self.resources = set()
        self.servers = None

    def add(self, name, chall, response, validation):
        self.resources.add(standalone.HTTP01RequestHandler.HTTP01Resource(
            chall=chall, response=response, validation=validation))

    def start(self):
        self.servers = standalone.HTTP01DualNetworkedServers(("127.0.0.1", self.port), self.resources)
        self.servers.serve_forever()

    def stop(self):
        if self.servers is not None:
            self.servers.shutdown_and_server_close()


class TlsAlpn01Standalone:
    """The library's own tls-alpn-01 server (acme.standalone): it presents, by SNI,
    the self-signed certificate with the acmeIdentifier extension that
    TLSALPN01.validation made."""

    def __init__(self, port):
        self.port = port
        self.certs = {}
        self.server = None
        self.thread = None

    def add(self, name, chall, response, validation):
        cert, key = validation
        self.certs[name.encode()] = (key, cert)

    def start(self):
        self.server = standalone.TLSALPN01Server(("127.0.0.1", self.port), certs=[],
                                                 challenge_certs=self.certs)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


class Dns01Hook:
    """Publishes TXT records through the test DNS server's HTTP endpoint, as a DNS
    provider's API would be called."""

    def __init__(self, url):
        self.url = url
        self.names = []
        # The hook is on loopback: no proxy from the environment.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def call(self, method, fields):
        data = urllib.parse.urlencode(fields).encode()
        if method == "POST":
            req = urllib.request.Request(self.url, data=data, method="POST")
        else:
            req = urllib.request.Request(self.url + "?" + data.decode(), method=method)
        with self.opener.open(req, timeout=10) as r:
            r.read()

    def add(self, name, chall, response, validation):
        record = chall.validation_domain_name(name)
        self.call("POST", {"name": record, "value": validation})
        self.names.append(record)

    def start(self):
        pass

    def stop(self):
        for record in self.names:
            self.call("DELETE", {"name": record})


def solver(args):
    if args.challenge == "http-01":
        if args.http01_port:
            return challenges.HTTP01, Http01Standalone(args.http01_port)
        if args.webroot:
            return challenges.HTTP01, Http01Webroot(args.webroot)
        raise RuntimeError("http-01 needs --http01-port or --webroot")
    if args.challenge == "dns-01":
        if not args.dns_hook:
            raise RuntimeError("dns-01 needs --dns-hook")
        return challenges.DNS01, Dns01Hook(args.dns_hook)
    if args.challenge == "tls-alpn-01":
        if not args.tls_alpn_port:
            raise RuntimeError("tls-alpn-01 needs --tls-alpn-port")
        return challenges.TLSALPN01, TlsAlpn01Standalone(args.tls_alpn_port)
    raise RuntimeError(f"challenge {args.challenge!r}: want http-01, dns-01 or tls-alpn-01")


def issue(args):
    key, regr = load_account(args.account)
    acme = acme_client(args.directory, key, regr)
    cert_key = new_ec_key()
    csr_pem = crypto_util.make_csr(pem_of(cert_key), args.names)
    order = acme.new_order(csr_pem)

    chall_type, answer = solver(args)
    pending = []
    for authzr in order.authorizations:
        if authzr.body.status == messages.STATUS_VALID:
            continue  # authorised by an earlier order of this account
        name = authzr.body.identifier.value
        challb = next((c for c in authzr.body.challenges if isinstance(c.chall, chall_type)), None)
        if challb is None:
            offered = ", ".join(c.chall.typ for c in authzr.body.challenges)
            raise RuntimeError(f"{name}: the server offers no {args.challenge} (offers {offered})")
        response, validation = challb.response_and_validation(key, domain=name)
        answer.add(name, challb.chall, response, validation)
        pending.append((challb, response))
    answer.start()
    try:
        for challb, response in pending:
            acme.answer_challenge(challb, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
        order = acme.poll_and_finalize(order, deadline)
    finally:
        answer.stop()

    write_private(args.key_out, pem_of(cert_key))
    with open(args.cert_out, "w") as f:
        f.write(order.fullchain_pem)
    print(order.uri)


def revoke(args):
    if args.cert_key:
        # RFC 8555 7.6: the certificate's own key signs the request (jwk, no account).
        with open(args.cert_key, "rb") as f:
            key = jose.JWKEC.load(f.read())
        acme = acme_client(args.directory, key)
    elif args.account:
        key, regr = load_account(args.account)
        acme = acme_client(args.directory, key, regr)
    else:
        raise RuntimeError("revoke needs --account or --cert-key")
    with open(args.cert, "rb") as f:
        cert = OpenSSL.crypto.load_certificate(OpenSSL.crypto.FILETYPE_PEM, f.read())
    acme.revoke(jose.ComparableX509(cert), args.reason)


def parse(argv):
    p = argparse.ArgumentParser(prog="client.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    reg = sub.add_parser("register")
    reg.add_argument("--eab-kid", required=True)
    reg.add_argument("--eab-hmac", required=True)
    reg.add_argument("--email", required=True)
    iss = sub.add_parser("issue")
    iss.add_argument("--challenge", required=True)
    iss.add_argument("--http01-port", type=int)
    iss.add_argument("--webroot")
    iss.add_argument("--dns-hook")
    iss.add_argument("--tls-alpn-port", type=int)
    iss.add_argument("--key-out", required=True)
    iss.add_argument("--cert-out", required=True)
    iss.add_argument("names", nargs="+")
    rev = sub.add_parser("revoke")
    rev.add_argument("--cert", required=True)
    rev.add_argument("--cert-key")
    rev.add_argument("--reason", type=int, default=0)
    for s in (reg, iss, rev):
        s.add_argument("--directory", required=True)
        s.add_argument("--account", required=s is not rev)
    return p.parse_args(argv)


def describe(err):
    """One line for the person (or test) running the script."""
    if isinstance(err, errors.ValidationError):
        # The library's message is empty; the problems are in the authorizations.
        parts = []
        for authzr in err.failed_authzrs:
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    parts.append(f"{authzr.body.identifier.value}: {challb.chall.typ}: {challb.error}")
        detail = "; ".join(parts)
    else:
        detail = str(err)
    return f"{type(err).__name__}: " + (" ".join(detail.split()) or repr(err))


def main(argv):
    args = parse(argv)
    try:
        {"register": register, "issue": issue, "revoke": revoke}[args.command](args)
    except Exception as err:  # pylint: disable=broad-except
        print(f"pyacme {args.command}: {describe(err)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
