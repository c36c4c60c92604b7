import { privateServerScenarios } from "./redis-private-scenarios.js";

// Batching, restart and persistence scenarios of mode=reliable, each on a redis-server of its own.
privateServerScenarios("reliable");
