"""SMTP sink of the delivery benchmark (benches/dispatch.sh): a real aiosmtpd server on 127.0.0.1 that accepts
every mail and appends `<message-id> <unix µs>` per accepted mail to FILE (flushed per mail), so the benchmark can
compute trigger -> receipt latencies. The same server is what the plain SMTP load (`segkit-smtp-load`) measures.

    python smtp_sink.py PORT FILE      # prints READY, serves until killed
"""
import sys
import time

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        t = time.time_ns() // 1000
        mid = "-"
        for line in (envelope.original_content or envelope.content or b"").split(b"\r\n"):
            if not line:
                break
            if line[:11].lower() == b"message-id:":
                mid = line[11:].strip().decode("ascii", "replace")
                break
        self.out.write(f"{mid} {t}\n")
        self.out.flush()
        return "250 2.0.0 ok"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    out = open(path, "a", buffering=1 << 16)
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
