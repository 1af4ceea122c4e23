#!/usr/bin/python3
"""Demo destination servers (aiosmtpd), all on loopback:
  greylist  — answers 450 4.7.1 to a recipient's first attempt, accepts later ones
  strict    — rejects recipients whose local part starts with "unknown" (550 5.1.1)
Usage: servers.py PORT GREYLIST_IP STRICT_IP   (runs until killed)"""
import asyncio
import sys

from aiosmtpd.controller import Controller


class Greylist:
    def __init__(self):
        self.seen = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address not in self.seen:
            self.seen.add(address)
            return "450 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Accepted"


class Strict:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].startswith("unknown"):
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Accepted"


def main():
    port, grey_ip, strict_ip = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    ctrls = [Controller(Greylist(), hostname=grey_ip, port=port),
             Controller(Strict(), hostname=strict_ip, port=port)]
    for c in ctrls:
        c.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for c in ctrls:
            c.stop()


if __name__ == "__main__":
    main()
