#!/bin/sh
# silent-hang: a workload that goes quiet on purpose and never ends, to prove that the lab turns a
# silent guest into a "hang" verdict with evidence instead of waiting forever.
echo "silent-hang: going quiet now"
exec sleep 100000
