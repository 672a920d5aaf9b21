#!/usr/bin/env node
// Azurite's blob service (tests/servers/node_modules, pinned in package.json) with its
// garbage collection run every AZURITE_GC_INTERVAL_MS instead of every 10 minutes.
//
// Why: Azurite frees the data of deleted blobs in a mark-and-sweep pass, and its sweep
// removes each unreferenced extent with a scan of the whole extent table, so one pass costs
// the square of what the suite wrote since the last one. Ten minutes of a parallel run left
// enough garbage that the pass held Azurite's only thread for over a minute, and every
// Azure request in flight timed out. The interval is a module constant read when the
// server starts (no command-line option), so it is set here before Azurite loads.
"use strict";
const constants = require("azurite/dist/src/blob/utils/constants");

const interval = Number(process.env.AZURITE_GC_INTERVAL_MS);
if (!(interval > 0)) {
  throw new Error("AZURITE_GC_INTERVAL_MS must be a positive number of milliseconds");
}
constants.DEFAULT_GC_INTERVAL_MS = interval;
require("azurite/dist/src/blob/main");
