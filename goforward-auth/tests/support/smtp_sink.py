#!/usr/bin/env python3
"""An SMTP sink for goforward-auth's SMTP tests (aiosmtpd, a real SMTP server).

    python3 smtp_sink.py <mail dir> [--starttls CERT KEY]

Listens on 127.0.0.1 on an ephemeral port and prints `PORT <n>` on stdout
once it accepts connections. Every message it receives is written to
`<mail dir>/<n>.eml`: `X-Sink-*` lines (envelope sender, recipients, whether
the session was under TLS), a blank line, then the message as received.
With `--starttls`, it offers STARTTLS with that certificate and refuses
mail before it (`require_starttls`). Runs until killed or stdin closes.
"""

import asyncio
import logging
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        head = [
            f"X-Sink-From: {envelope.mail_from}",
            f"X-Sink-To: {', '.join(envelope.rcpt_tos)}",
            f"X-Sink-TLS: {'yes' if session.ssl is not None else 'no'}",
        ]
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode()
        tmp = os.path.join(self.directory, f".{self.count}.tmp")
        with open(tmp, "wb") as f:
            f.write(("\r\n".join(head) + "\r\n\r\n").encode())
            f.write(content)
        # Rename: the test never sees a half-written file.
        os.rename(tmp, os.path.join(self.directory, f"{self.count}.eml"))
        return "250 OK queued"


async def main():
    args = sys.argv[1:]
    if not args:
        sys.exit("usage: smtp_sink.py <mail dir> [--starttls CERT KEY]")
    directory = args[0]
    context = None
    if len(args) == 4 and args[1] == "--starttls":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args[2], args[3])
    # The refusals the tests provoke (an untrusted certificate) would print
    # tracebacks; the tests check their outcome instead.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    handler = Sink(directory)
    loop = asyncio.get_running_loop()

    def factory():
        return SMTP(
            handler,
            hostname="localhost",
            tls_context=context,
            require_starttls=context is not None,
        )

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    # Stop when the test (our parent) goes away and closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
