#!/usr/bin/env node
// Entry point of the `wqueue` command: the compiled CLI (built by `npm run build`, run by `npm ci`).
await import("../dist/cli/main.js");
