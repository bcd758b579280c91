#include "test/process_mesh.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

namespace meshbus::testing {
namespace {

std::string ExeDir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : exe.parent_path().string();
}

// Runs a shell command line; returns its exit status and everything it printed.
int Run(const std::string& command, std::string* output) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::string BinDir() {
  const char* env = getenv("MESHBUS_BIN_DIR");
  return env && *env ? env : ExeDir();
}

std::string ScriptsDir() {
  const char* env = getenv("MESHBUS_SCRIPTS_DIR");
  return env && *env ? env : ExeDir() + "/../../scripts";
}

Result<std::unique_ptr<ProcessMesh>> ProcessMesh::Up(int n, std::vector<std::string> flags) {
  char tmpl[] = "/tmp/meshbus-pm-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return Status::Internal("mkdtemp failed");
  std::string dir = tmpl;
  std::string extra;
  for (const std::string& f : flags) extra += " '" + f + "'";
  std::mt19937 rng(std::random_device{}());
  std::string output;
  // A random base port, tried again elsewhere if something holds it.
  for (int attempt = 0; attempt < 4; ++attempt) {
    // Below 32768, where Linux picks the ports of outgoing connections.
    int base = 20000 + static_cast<int>(rng() % 12000);
    output.clear();
    std::string cmd = "MESHBUS_BIN_DIR='" + BinDir() + "' '" + ScriptsDir() + "/mesh-up.sh' " +
                      std::to_string(n) + " --dir '" + dir + "' --base-port " +
                      std::to_string(base) + (extra.empty() ? "" : " --" + extra);
    if (Run(cmd, &output) == 0) {
      return std::unique_ptr<ProcessMesh>(new ProcessMesh(n, dir));
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return Status::Unavailable("mesh-up.sh failed: " + output);
}

ProcessMesh::~ProcessMesh() {
  // A stopped process cannot act on SIGTERM: continue them all first.
  for (int i = 0; i < n_; ++i) Signal(i, SIGCONT);
  std::string output;
  Run("'" + ScriptsDir() + "/mesh-down.sh' --dir '" + dir_ + "'", &output);
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

std::string ProcessMesh::client_endpoint(int i) const {
  return "ipc://" + dir_ + "/n" + std::to_string(i + 1) + ".ipc";
}

pid_t ProcessMesh::pid(int i) const {
  std::ifstream in(dir_ + "/n" + std::to_string(i + 1) + ".pid");
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

bool ProcessMesh::Signal(int i, int signal) const {
  pid_t p = pid(i);
  return p > 0 && ::kill(p, signal) == 0;
}

Result<Client> ProcessMesh::Connect(int i, const std::string& name) const {
  ClientOptions o;
  o.endpoint = client_endpoint(i);
  o.name = name;
  return Client::Connect(o);
}

}  // namespace meshbus::testing
