// ProcessMesh: a mesh of real meshbusd processes on this machine, started
// and stopped with scripts/mesh-up.sh and scripts/mesh-down.sh, in a private
// temporary directory. Processes are addressed by the pids in their pid files.
// For the multi-process tests and the benchmark; not thread-safe.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "sdk/client.h"
#include "topics/status.h"

namespace meshbus::testing {

class ProcessMesh {
 public:
  // Starts n brokers (and waits until each sees all n alive). `flags` go to
  // every meshbusd.
  static Result<std::unique_ptr<ProcessMesh>> Up(int n, std::vector<std::string> flags = {});
  ~ProcessMesh();  // mesh-down.sh: every broker stopped by its pid

  int size() const { return n_; }
  std::string client_endpoint(int i) const;  // broker i, from 0
  pid_t pid(int i) const;                    // from its pid file; 0 if none
  bool Signal(int i, int signal) const;      // kill(2) by pid
  Result<Client> Connect(int i, const std::string& name = "test") const;
  const std::string& dir() const { return dir_; }

 private:
  ProcessMesh(int n, std::string dir) : n_(n), dir_(std::move(dir)) {}
  int n_;
  std::string dir_;
};

// Where the scripts and binaries are: $MESHBUS_SCRIPTS_DIR and
// $MESHBUS_BIN_DIR, or beside this executable in a build tree.
std::string ScriptsDir();
std::string BinDir();

}  // namespace meshbus::testing
