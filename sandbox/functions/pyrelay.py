"""pyrelay.py - relay.c's twin in python: "b,c|body" calls b with "c|body" through nemo.call."""
import nemo


def main(req):
    body = req.decode()
    names, _, rest = body.partition("|")
    if not names:
        return rest
    first, _, more = names.partition(",")
    try:
        out = nemo.call(first, more + "|" + rest)
    except nemo.CallError as e:
        return "py:error %d %s" % (e.code, e)
    return b"py:" + out
