#!/bin/sh
# test-stderr.sh - test exec function (per request): the request back on stdout, and as many
# lines on stderr as the request's first word says (2 when it is no number).
req=$(cat)
printf '%s' "$req"
n=${req%% *}
case "$n" in '' | *[!0-9]*) n=2 ;; esac
i=1
while [ "$i" -le "$n" ]; do
	echo "to stderr $i" >&2
	i=$((i + 1))
done
