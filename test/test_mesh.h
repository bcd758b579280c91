// TestMesh: N real brokers in this process, meshed over loopback TCP on
// ephemeral ports, with ipc client endpoints in a private temporary
// directory. For integration tests; not thread-safe (use from the test thread).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/broker.h"
#include "sdk/client.h"

namespace meshbus::testing {

// Polls `condition` until it holds or `timeout` passes; true if it held.
// The short pause between polls is the polling interval, not a wait for the
// condition: the deadline bounds the wait.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

class TestMesh {
 public:
  // Fast failure detection by default, so tests finish quickly.
  static BrokerOptions FastOptions();

  // Room for n brokers; the first `started` of them (all by default) start now.
  explicit TestMesh(int n, BrokerOptions base = FastOptions(), int started = -1);
  ~TestMesh();

  int size() const { return static_cast<int>(brokers_.size()); }
  Broker& broker(int i) { return *brokers_.at(i); }
  std::string name(int i) const { return "n" + std::to_string(i + 1); }
  std::string client_endpoint(int i) const { return dir_ + "/" + name(i) + ".ipc"; }
  Client Connect(int i, const std::string& client_name = "test");

  // Starts broker i (again: a new incarnation), seeded with broker 0 (or 1).
  // When the base options name voters and no data dir, broker i keeps its
  // registry state in <private dir>/<name>.raft, which a restart recovers.
  void Start(int i);
  // Stops broker i: gracefully (bye), or as if its process died.
  void Stop(int i, bool graceful);
  bool running(int i) const { return brokers_.at(i) != nullptr; }
  // True when broker i sees exactly the running brokers alive.
  bool Converged(int i);
  bool AllConverged();
  // Makes the nodes in `a` and `b` unable to hear each other.
  void Partition(const std::vector<int>& a, const std::vector<int>& b);
  void Heal();

 private:
  BrokerOptions base_;
  std::string dir_;
  std::vector<std::string> calls_;  // calls endpoint of each broker's first start
  std::vector<std::unique_ptr<Broker>> brokers_;
};

}  // namespace meshbus::testing
