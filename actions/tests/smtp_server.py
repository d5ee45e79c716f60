"""A real SMTP server for actions/tests/smtp.rs (aiosmtpd): writes each accepted mail to DIR/N.eml and its
envelope to DIR/N.env; refuses recipients starting with `reject` (550) and `later` (451).

    python smtp_server.py DIR PORT [CERT KEY MODE]   # MODE: starttls | tls
"""
import os
import ssl
import sys
import time

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 no such user"
        if address.startswith("later"):
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, str(self.count))
        with open(base + ".env", "w") as f:
            f.write(envelope.mail_from + "\n" + ",".join(envelope.rcpt_tos))
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 queued as q%d" % self.count


def main():
    directory, port = sys.argv[1], int(sys.argv[2])
    kwargs = {}
    if len(sys.argv) > 5:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        if sys.argv[5] == "starttls":
            kwargs = {"tls_context": ctx, "require_starttls": True}
        else:
            kwargs = {"ssl_context": ctx}
    controller = Controller(Handler(directory), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
