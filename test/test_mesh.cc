#include "test/test_mesh.h"

#include <stdlib.h>

#include <filesystem>
#include <set>
#include <stdexcept>
#include <thread>

namespace meshbus::testing {

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // poll interval
  }
}

BrokerOptions TestMesh::FastOptions() {
  BrokerOptions o;
  o.listen = "tcp://127.0.0.1:*";
  o.heartbeat_interval = std::chrono::milliseconds(20);
  o.suspicion_timeout = std::chrono::milliseconds(150);
  o.probe_timeout = std::chrono::milliseconds(100);
  o.hello_retry_interval = std::chrono::milliseconds(100);
  o.client_heartbeat_interval = std::chrono::milliseconds(50);
  o.session_timeout = std::chrono::milliseconds(400);
  o.log_level = "warn";
  return o;
}

TestMesh::TestMesh(int n, BrokerOptions base, int started) : base_(std::move(base)) {
  char tmpl[] = "/tmp/meshbus-test-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  brokers_.resize(n);
  calls_.resize(n);
  for (int i = 0; i < (started < 0 ? n : started); ++i) Start(i);
}

TestMesh::~TestMesh() {
  for (auto& b : brokers_) {
    if (b) b->Stop(false);
  }
  brokers_.clear();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void TestMesh::Start(int i) {
  BrokerOptions o = base_;
  o.node_name = name(i);
  o.client_endpoint = "ipc://" + client_endpoint(i);
  // Reuse the first port on a restart, as a real node would.
  if (!calls_[i].empty()) o.listen = calls_[i];
  // A registry of voters needs each broker's own data dir; the same one on a
  // restart, so that the broker recovers its term, vote and log from it.
  if (!o.voters.empty() && o.data_dir.empty()) o.data_dir = dir_ + "/" + name(i) + ".raft";
  for (int j = 0; j < size(); ++j) {
    if (j != i && !calls_[j].empty() && o.seeds.size() < 2) o.seeds.push_back(calls_[j]);
  }
  Result<std::unique_ptr<Broker>> b = Broker::Start(o);
  if (!b.ok()) throw std::runtime_error("broker " + name(i) + ": " + b.status().ToString());
  calls_[i] = b.value()->calls_endpoint();
  brokers_[i] = std::move(b.value());
}

void TestMesh::Stop(int i, bool graceful) {
  brokers_.at(i)->Stop(graceful);
  brokers_[i].reset();
}

Client TestMesh::Connect(int i, const std::string& client_name) {
  ClientOptions o;
  o.endpoint = "ipc://" + client_endpoint(i);
  o.name = client_name;
  Result<Client> c = Client::Connect(o);
  if (!c.ok()) throw std::runtime_error("connect to " + name(i) + ": " + c.status().ToString());
  return std::move(c.value());
}

bool TestMesh::Converged(int i) {
  if (!brokers_.at(i)) return false;
  Result<Client> c = Client::Connect({"ipc://" + client_endpoint(i), "converged"});
  if (!c.ok()) return false;
  Result<std::vector<NodeInfo>> nodes = c->Nodes();
  if (!nodes.ok()) return false;
  std::set<std::string> alive, want;
  for (const NodeInfo& n : *nodes) {
    if (n.state == "alive") alive.insert(n.name);
  }
  for (int j = 0; j < size(); ++j) {
    if (brokers_[j]) want.insert(name(j));
  }
  return alive == want;
}

bool TestMesh::AllConverged() {
  for (int i = 0; i < size(); ++i) {
    if (brokers_[i] && !Converged(i)) return false;
  }
  return true;
}

void TestMesh::Partition(const std::vector<int>& a, const std::vector<int>& b) {
  std::vector<std::string> names_a, names_b;
  for (int i : a) names_a.push_back(name(i));
  for (int i : b) names_b.push_back(name(i));
  for (int i : a) brokers_.at(i)->SetBlockedPeers(names_b);
  for (int i : b) brokers_.at(i)->SetBlockedPeers(names_a);
}

void TestMesh::Heal() {
  for (auto& b : brokers_) {
    if (b) b->SetBlockedPeers({});
  }
}

}  // namespace meshbus::testing
