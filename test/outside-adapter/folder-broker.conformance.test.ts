import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll } from "vitest";
import { brokerConformanceSuite } from "../../src/testing/index.js";
import { FolderBroker } from "../fixtures/outside-adapter/folder-broker.js";

// An adapter written outside src/, against wqueue's public types only, passes the suite as it is.
const root = mkdtempSync(path.join(tmpdir(), "wqueue-folder-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const url = pathToFileURL(root).href.replace(/^file:/, "folder:");

brokerConformanceSuite({
  name: "folder (an outside adapter)",
  open: () => new FolderBroker(url),
  // The kill cases' child process opens the same folder through the fixture's own opener.
  child: { arg: () => url, module: new URL("../fixtures/outside-adapter/folder-broker.ts", import.meta.url), export: "openFolderBroker" },
  skip: { "broker-restart": "no server: the queues are files, read by polling" },
});
