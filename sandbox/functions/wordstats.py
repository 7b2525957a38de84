"""wordstats.py - sample python function: word statistics, a digest and a compression ratio.

Request: JSON {"text": "...", "top": 5} (or plain text). Response: JSON with the word count,
the most common words, the SHA-256 of the text and how well zlib compresses it.
"""
import collections
import hashlib
import json
import re
import zlib

WORD = re.compile(r"[a-z']+")


def handler(request):
    try:
        doc = json.loads(request)
        text, top = doc["text"], int(doc.get("top", 5))
    except (ValueError, TypeError, KeyError):
        text, top = request.decode("utf-8", "replace"), 5
    words = WORD.findall(text.lower())
    raw = text.encode()
    packed = zlib.compress(raw, 6)
    return json.dumps(
        {
            "words": len(words),
            "unique": len(set(words)),
            "top": collections.Counter(words).most_common(top),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "zlib_ratio": round(len(packed) / max(1, len(raw)), 4),
        }
    )
