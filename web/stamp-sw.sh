#!/bin/sh
# Writes the bundle's file names into the service worker's BUNDLE (see sw.js). Trunk runs it
# after each build, in the staging directory that becomes web/dist.
set -eu
cd "$TRUNK_STAGING_DIR"
files=$(ls | LC_ALL=C sort | grep -v -x -e sw.js -e index.html | sed 's/.*/"&"/' | paste -sd, -)
sed -i "s|\"__BUNDLE__\"|$files|" sw.js
