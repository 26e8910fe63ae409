# A test SMTP server on Debian's python3-aiosmtpd, started by
# internal/testutil/smtp.go (StartSMTP). It writes every message it
# accepts to the spool folder as a JSON file (envelope, raw data, whether
# the session was encrypted and who logged in), renamed into place before
# the server answers 250, so that a message is there once the client's
# DATA succeeded. It prints "ready" when it accepts connections and stops
# on SIGTERM.
import argparse
import json
import os
import signal
import ssl
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Spool:
    def __init__(self, folder):
        self.folder = folder
        self.seq = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.seq += 1
            n = self.seq
        ssl_obj = server.transport.get_extra_info("ssl_object")
        login = None
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", "replace")
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.original_content.decode("utf-8", "replace"),
            "tls": ssl_obj is not None,
            "starttls": session.ssl is not None,
            "login": login,
        }
        tmp = os.path.join(self.folder, ".%06d.tmp" % n)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.folder, "%06d.json" % n))
        return "250 OK"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--spool", required=True)
    p.add_argument("--mode", choices=["none", "starttls", "require-starttls", "tls"], default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password-file")
    a = p.parse_args()

    kw = {"hostname": a.host, "port": a.port, "server_hostname": "rewind-test-smtp"}
    if a.mode != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        if a.mode == "tls":
            kw["ssl_context"] = ctx
        else:
            kw["tls_context"] = ctx
            kw["require_starttls"] = a.mode == "require-starttls"
    if a.user:
        with open(a.password_file) as f:
            password = f.read()

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == a.user
                  and auth_data.password.decode() == password)
            # handled=False: the server itself answers 535 on a failure.
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

        kw["authenticator"] = authenticate
        kw["auth_required"] = True
        # AUTH is offered only on an encrypted session, unless the server
        # has no TLS at all.
        kw["auth_require_tls"] = a.mode != "none"

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    c = Controller(Spool(a.spool), **kw)
    c.start()
    print("ready", flush=True)
    done.wait()
    c.stop()


if __name__ == "__main__":
    main()
