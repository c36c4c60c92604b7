import { clusterConformance } from "./cluster-conformance.js";

// The shared conformance suite on a Valkey Cluster of this file's own (Valkey 8, the Linux
// Foundation's fork of Redis 7.2): `redis://...?cluster=true` works unchanged against it.
clusterConformance("valkey");
