#include "bin/compare_pg.h"

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

extern char** environ;

namespace meshbus::compare {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kRunLimit = std::chrono::seconds(180);
const std::string kCookie = "meshbus-compare";

// A child process, optionally with its stdin and stdout on pipes; stopped
// (SIGCONT, SIGTERM, then SIGKILL) by its pid.
class Child {
 public:
  Child(std::vector<std::string> args, const std::vector<std::string>& env, bool pipes) {
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings = env;
    for (char** e = environ; *e != nullptr; ++e) env_strings.push_back(*e);
    std::vector<char*> envp;
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    if (pipes && pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0) {
      posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
      posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    } else {
      posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) pid_ = 0;
    posix_spawn_file_actions_destroy(&actions);
    if (pipes) {
      if (in[0] >= 0) close(in[0]);
      if (out[1] >= 0) close(out[1]);
      in_ = in[1];
      out_ = out[0];
    }
  }
  ~Child() {
    if (in_ >= 0) close(in_);
    if (out_ >= 0) close(out_);
    if (pid_ <= 0) return;
    kill(pid_, SIGCONT);
    kill(pid_, SIGTERM);
    for (int i = 0; i < 30; ++i) {  // up to 3 s, then SIGKILL
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(milliseconds(100));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // The next line of its stdout, or nullopt at the deadline or its end.
  std::optional<std::string> ReadLine(Clock::time_point deadline) {
    while (true) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(std::min<long>(left, 1000))) <= 0) continue;
      char chunk[4096];
      ssize_t n = read(out_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  void WriteLine(const std::string& line) {
    std::string l = line + "\n";
    (void)!write(in_, l.data(), l.size());
  }

 private:
  pid_t pid_ = 0;
  int in_ = -1, out_ = -1;
  std::string buf_;
};

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
