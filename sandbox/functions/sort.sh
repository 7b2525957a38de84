#!/bin/sh
# sort.sh - sample per-request exec function: the request's lines, sorted (one process per request).
exec /usr/bin/sort
