// The NATS side of `make compare` (issue #6): a 3-server nats-server cluster
// on loopback, started and stopped by this process (by pid), driven by a
// minimal NATS-protocol client written for the benchmark (plain sockets,
// batched writes), so that the figures measure the servers, not a client
// library. Not thread-safe: one run at a time.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace meshbus::compare {

struct NatsFigures {
  double pub_64 = 0, pub_1k = 0;  // msgs/s, publisher on A, subscriber on C
  uint64_t pub_64_lost = 0, pub_1k_lost = 0;
  double queue = 0;  // msgs/s through a queue group of 3 subscribers on C
  uint64_t queue_lost = 0;
  double request_p50_us = 0, request_p99_us = 0;  // A -> responder on C, sequential
};

// Runs every part once on a fresh cluster; nullopt (with the reason in
// *error) when nats-server is missing or the cluster did not form.
std::optional<NatsFigures> MeasureNats(std::string* error);

}  // namespace meshbus::compare
