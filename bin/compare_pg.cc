#include "bin/compare_pg.h"

#include "bin/compare_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace meshbus::compare {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kRunLimit = std::chrono::seconds(180);
const std::string kCookie = "meshbus-compare";

int64_t WallMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::vector<std::string> ErlArgs(const std::string& node, const std::string& beam_dir,
                                 const std::string& eval) {
  return {"erl",
          "-name",
          node + "@127.0.0.1",
          "-setcookie",
          kCookie,
          "-kernel",
          "net_ticktime",
          "2",
          "-kernel",
          "inet_dist_use_interface",
          "{127,0,0,1}",
          "-noshell",
          "-pa",
          beam_dir,
          "-eval",
          eval};
}

}  // namespace

std::optional<PgFigures> MeasurePg(const std::string& scripts_dir, const std::string& beam_dir,
                                   std::string* error) {
  std::string compile = "erlc -o '" + beam_dir + "' '" + scripts_dir + "/pg_bench.erl'";
  if (std::system(compile.c_str()) != 0) {
    *error = "cannot compile pg_bench.erl (is erlang-nox installed? make compare installs it)";
    return std::nullopt;
  }
  std::mt19937 rng(std::random_device{}());
  const std::string port = std::to_string(24000 + static_cast<int>(rng() % 8000));
  // No crash dump files left behind if a node dies.
  const std::vector<std::string> env = {"ERL_EPMD_PORT=" + port, "ERL_EPMD_ADDRESS=127.0.0.1",
                                        "ERL_CRASH_DUMP_SECONDS=0"};
  // Its own epmd, in the foreground, so that it is stopped by its pid too.
  Child epmd({"epmd", "-address", "127.0.0.1", "-port", port}, env, false);
  if (!epmd.started()) {
    *error = "cannot start epmd";
    return std::nullopt;
  }
  // The nodes need epmd listening: wait until it answers.
  const std::string names =
      "ERL_EPMD_PORT=" + port + " epmd -port " + port + " -names >/dev/null 2>&1";
  Clock::time_point up_by = Clock::now() + std::chrono::seconds(10);
  while (std::system(names.c_str()) != 0) {
    if (Clock::now() >= up_by) {
      *error = "epmd did not come up";
      return std::nullopt;
    }
    std::this_thread::sleep_for(milliseconds(50));  // poll interval, bounded by up_by
  }
  Child pg2(ErlArgs("pg2", beam_dir, "pg_bench:serve()"), env, false);
  Child pg3(ErlArgs("pg3", beam_dir, "pg_bench:serve()"), env, false);
  Child pg1(ErlArgs("pg1", beam_dir, "pg_bench:main([\"pg2@127.0.0.1\", \"pg3@127.0.0.1\"])"), env,
            true);
  std::map<std::string, double> results;
  Clock::time_point deadline = Clock::now() + kRunLimit;
  bool done = false;
  while (!done) {
    std::optional<std::string> line = pg1.ReadLine(deadline);
    if (!line) break;
    std::istringstream in(*line);
    std::string word;
    in >> word;
    if (word == "RESULT") {
      std::string name;
      double value = 0;
      in >> name >> value;
      results[name] = value;
    } else if (word == "SIGNAL") {
      std::string sig;
      pid_t pid = 0;
      in >> sig >> pid;
      int signo = sig == "KILL" ? SIGKILL : sig == "STOP" ? SIGSTOP : SIGCONT;
      // Only the nodes this run started: pg2's or pg3's OS pid.
      int64_t at = WallMicros();
      if (pid > 0 && (pid == pg2.pid() || pid == pg3.pid())) kill(pid, signo);
      pg1.WriteLine(std::to_string(at));
    } else if (word == "DONE") {
      done = true;
    }
  }
  if (!done) {
    *error = "the pg run did not finish (results so far: " + std::to_string(results.size()) + ")";
    return std::nullopt;
  }
  PgFigures f;
  f.join_p50_us = results["join_p50_us"];
  f.join_p99_us = results["join_p99_us"];
  f.joins_per_s = results["joins_per_s"];
  f.broadcast_per_s = results["broadcast_deliveries_per_s"];
  f.kill_ms = results["kill_ms"];
  f.stop_ms = results["stop_ms"];
  return f;
}

}  // namespace meshbus::compare
