"""heavyimport.py - a python function with an import-heavy module: what a zygote saves grows.

Imports json, re, hashlib, zlib, email and decimal at load; the request is text, the response
its digest, its compressed size and a decimal sum of its numbers.
"""
import decimal
import email.message
import email.parser
import hashlib
import json
import re
import zlib

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def handler(req):
    text = req.decode(errors="replace")
    msg = email.message.EmailMessage()
    msg.set_content(text)
    total = sum((decimal.Decimal(n) for n in NUMBER.findall(text)), decimal.Decimal(0))
    return json.dumps(
        {
            "sha256": hashlib.sha256(req).hexdigest(),
            "zlib": len(zlib.compress(req)),
            "sum": str(total),
            "lines": len(email.parser.Parser().parsestr(msg.as_string()).get_payload().splitlines()),
        }
    )
