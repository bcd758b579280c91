// The event-store figures of meshbus-bench (bench_eventstore.cc), measured
// on meshes of 3 meshbusd processes (the registry's voters) on this machine:
//   - events per second from writers on n2 through the random emitters of a
//     store leader on n1 to a subscriber on n3, one writer and 8 writers
//     (each with one event outstanding), and the end-to-end latency from the
//     append to the subscriber, p50/p99
//   - store leader failover: from kill -9 of the leader's node to another
//     candidate active with its pools, and to the first event delivered
//     after the kill, over fresh meshes
#pragma once

namespace meshbus::bench {

// Runs every part and prints its table; `failover_rounds` fresh meshes for
// the failover figures.
void EventStoreBenchmarks(int failover_rounds);

}  // namespace meshbus::bench
