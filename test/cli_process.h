// CliProcess: a `meshbus` CLI process for the tests, with its stdout and
// stderr on pipes; started with posix_spawn and always stopped by its pid.
// Not thread-safe (one test thread).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "test/process_mesh.h"
#include "test/test_mesh.h"

namespace meshbus::testing {

// A `meshbus` process with its stdout and stderr on pipes. The destructor
// kills it (by its pid) if it still runs, and reaps it.
class CliProcess {
 public:
  CliProcess() = default;
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;
  ~CliProcess() {
    if (pid_ > 0) Stop(SIGKILL, std::chrono::milliseconds(2000));
    CloseFd(out_fd_);
    CloseFd(err_fd_);
  }

  // Starts `meshbus ARGS...`; false (with errno) if it could not.
  bool Start(const std::vector<std::string>& args) {
    std::vector<std::string> argv_strings = {BinDir() + "/meshbus"};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) return false;
    if (pipe2(err, O_CLOEXEC) != 0) {
      close(out[0]);
      close(out[1]);
      return false;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
    int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    if (rc != 0) {
      pid_ = 0;
      errno = rc;
      return false;
    }
    return true;
  }

  pid_t pid() const { return pid_; }
  const std::string& out() const { return out_; }
  const std::string& err() const { return err_; }

  // Reads stderr (or stdout) until a line starting with `prefix` has come;
  // that line, or nullopt if none came by the deadline (or the pipe closed).
  std::optional<std::string> WaitForErrLine(const std::string& prefix,
                                            std::chrono::milliseconds timeout) {
    return WaitForLine(/*from_stdout=*/false, prefix, timeout);
  }
  std::optional<std::string> WaitForOutLine(const std::string& prefix,
                                            std::chrono::milliseconds timeout) {
    return WaitForLine(/*from_stdout=*/true, prefix, timeout);
  }

  // Reads both pipes until the process closes them, then reaps it; its exit
  // code, or -1 if it did not exit by the deadline (then it is killed).
  int WaitExit(std::chrono::milliseconds timeout) {
    const std::chrono::steady_clock::time_point deadline =
        std::chrono::steady_clock::now() + timeout;
    while ((out_fd_ >= 0 || err_fd_ >= 0) && ReadSome(deadline, std::nullopt)) {
    }
    int status = 0;
    const bool exited =
        pid_ > 0 && WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; },
                            std::max(std::chrono::milliseconds(1),
                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                         deadline - std::chrono::steady_clock::now())));
    if (!exited) {
      if (pid_ > 0) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
      }
      pid_ = 0;
      return -1;
    }
    pid_ = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Sends `signal` to the process and waits (bounded) for it to exit.
  int Stop(int signal, std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    kill(pid_, signal);
    return WaitExit(timeout);
  }

 private:
  std::optional<std::string> WaitForLine(bool from_stdout, const std::string& prefix,
                                         std::chrono::milliseconds timeout) {
    const std::chrono::steady_clock::time_point deadline =
        std::chrono::steady_clock::now() + timeout;
    const std::string& text = from_stdout ? out_ : err_;
    size_t scanned = 0;  // lines before this offset were looked at
    while (true) {
      for (size_t nl; (nl = text.find('\n', scanned)) != std::string::npos; scanned = nl + 1) {
        std::string line = text.substr(scanned, nl - scanned);
        if (line.rfind(prefix, 0) == 0) return line;
      }
      if (!ReadSome(deadline, from_stdout)) return std::nullopt;
    }
  }

  static void CloseFd(int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  }

  // Waits until one of the pipes asked for (stdout, stderr, or either when
  // `which` is nullopt) has data or closes, and reads it. False at the
  // deadline, or when the pipes asked for are all closed.
  bool ReadSome(std::chrono::steady_clock::time_point deadline, std::optional<bool> which) {
    pollfd fds[2];
    int* owners[2];
    std::string* sinks[2];
    nfds_t n = 0;
    if (out_fd_ >= 0 && which.value_or(true)) {
      fds[n] = {out_fd_, POLLIN, 0};
      owners[n] = &out_fd_;
      sinks[n++] = &out_;
    }
    if (err_fd_ >= 0 && !which.value_or(false)) {
      fds[n] = {err_fd_, POLLIN, 0};
      owners[n] = &err_fd_;
      sinks[n++] = &err_;
    }
    if (n == 0) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    int ready = poll(fds, n, static_cast<int>(left.count()));
    if (ready < 0) return errno == EINTR;
    if (ready == 0) return false;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      char buf[4096];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        CloseFd(*owners[i]);  // the process closed it (or it broke)
      }
    }
    return true;
  }

  pid_t pid_ = 0;
  int out_fd_ = -1, err_fd_ = -1;
  std::string out_, err_;
};

struct CliResult {
  int code = -1;  // -1: did not start, or did not exit in time
  std::string out, err;
};

inline std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A suite of CLI tests sharing one 3-node mesh of meshbusd processes, started
// before its first test and stopped (by pid) after its last; each test uses
// names of its own.
class CliMeshTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto m = ProcessMesh::Up(3);
    if (m.ok()) {
      mesh = std::move(m.value());
    } else {
      mesh_error = m.status().ToString();
    }
  }
  static void TearDownTestSuite() {
    mesh.reset();  // mesh-down.sh: every broker stopped by its pid
    mesh_error.clear();
  }
  void SetUp() override { ASSERT_NE(mesh, nullptr) << mesh_error; }

  // `meshbus -b <broker of node i> ARGS...`
  std::vector<std::string> On(int node, std::vector<std::string> args) const {
    args.insert(args.begin(), {"-b", mesh->client_endpoint(node)});
    return args;
  }

  static inline std::unique_ptr<ProcessMesh> mesh;
  static inline std::string mesh_error;  // why there is no mesh
};

}  // namespace meshbus::testing
