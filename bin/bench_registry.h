// The registry figures of meshbus-bench (bench_registry.cc), measured on
// meshes of 3 voting meshbusd processes with their data directories on this
// machine's disk:
//   - registrations per second through the leader: sequential from a client
//     on a follower and from one on the leader, and with 100 in flight (100
//     clients, each on a thread of its own with one call outstanding)
//   - whereis (the local copy) and whereis_consistent (answered by the
//     leader) latency p50/p99, from a follower and from the leader
//   - the time from kill -9 of the leader to the first registration a client
//     on a surviving node gets an ok for, over fresh meshes
#pragma once

namespace meshbus::bench {

// Runs every part and prints their table. `failover_rounds` fresh meshes
// for the failover figure.
void RegistryBenchmarks(int failover_rounds);

}  // namespace meshbus::bench
