// The groups and failure figures of meshbus-bench (bench_groups.cc), on
// meshes of meshbusd processes on this machine. Each prints its line and
// returns its figures (meshbus-compare sets them beside Erlang pg's).
#pragma once

#include "bin/bench_messaging.h"

namespace meshbus::bench {

struct JoinLatencyFigures {
  double p50_us = 0, p99_us = 0;
};
// A join on n1 until a monitor on n2 sees it, `samples` times.
JoinLatencyFigures JoinLatency(const testing::ProcessMesh& mesh, int samples);
// Joins per second visible on n2: `members` joins in `groups` groups, from
// members/groups sessions on n1 and n3; batch > 1: JoinMany of that many.
double JoinThroughput(const testing::ProcessMesh& mesh, int members, int groups, int batch);

struct FailureFigures {
  double kill_ms = 0, stop_ms = 0;  // medians: members purged after kill -9, after SIGSTOP
};
// Fresh 3-node meshes, `runs` per signal.
FailureFigures FailureDetection(int runs);

}  // namespace meshbus::bench
