import { clusterConformance } from "./cluster-conformance.js";

// The shared conformance suite on a Redis Cluster of this file's own, in each of the three modes.
clusterConformance("redis");
