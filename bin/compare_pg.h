// The Erlang/OTP pg side of `make compare` (issue #6): three Erlang nodes on
// loopback (net_ticktime 2) with their own epmd, all started and stopped by
// this process by their pids, running scripts/pg_bench.erl. Not
// thread-safe: one run at a time.
#pragma once

#include <optional>
#include <string>

namespace meshbus::compare {

struct PgFigures {
  double join_p50_us = 0, join_p99_us = 0;  // join on pg1 seen by a monitor on pg2
  double joins_per_s = 0;                   // 10,000 members in 1,000 groups, seen on pg2
  double broadcast_per_s = 0;               // deliveries/s to a group of 3, one per node
  double kill_ms = 0, stop_ms = 0;          // member left on pg1 after kill -9 / SIGSTOP
};

// `beam_dir`: where to compile pg_bench.erl (from `scripts_dir`). nullopt,
// with the reason in *error, when Erlang is missing or a node failed.
std::optional<PgFigures> MeasurePg(const std::string& scripts_dir, const std::string& beam_dir,
                                   std::string* error);

}  // namespace meshbus::compare
