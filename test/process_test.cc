// Multi-process tests: real meshbusd processes started by scripts/mesh-up.sh,
// killed and frozen by pid, observed through the SDK.
#include <gtest/gtest.h>
#include <signal.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <set>

#include "test/process_mesh.h"
#include "test/test_mesh.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// The default failure bound of meshbusd: suspicion 500 ms + probe 400 ms.
// Waits allow for scheduling on a loaded machine; the benchmark measures.
constexpr milliseconds kDeadBound{900};
constexpr milliseconds kSlack{1100};

bool HasMember(Client& c, const std::string& scope, const std::string& group,
               const std::string& id) {
  auto m = c.Members(scope, group);
  if (!m.ok()) return false;
  for (const MemberId& x : *m) {
    if (x.ToString() == id) return true;
  }
  return false;
}

std::string StateOf(Client& c, const std::string& node) {
  auto nodes = c.Nodes();
  if (!nodes.ok()) return "error";
  for (const NodeInfo& n : *nodes) {
    if (n.name == node) return n.state;
  }
  return "unknown";
}

class ProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = ProcessMesh::Up(3);
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    mesh = std::move(m.value());
  }
  Client Connect(int i) {
    auto c = mesh->Connect(i);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c.value());
  }
  std::unique_ptr<ProcessMesh> mesh;
};

TEST_F(ProcessTest, KillNineRemovesTheNodesMembersEverywhere) {
  Client a = Connect(0), b = Connect(1), c = Connect(2);
  ASSERT_TRUE(b.Join("app", "g").ok());
  std::string id = b.self().ToString();
  ASSERT_TRUE(
      WaitFor([&] { return HasMember(a, "app", "g", id) && HasMember(c, "app", "g", id); }));

  auto killed_at = Clock::now();
  ASSERT_TRUE(mesh->Signal(1, SIGKILL));
  EXPECT_TRUE(
      WaitFor([&] { return !HasMember(a, "app", "g", id) && !HasMember(c, "app", "g", id); },
              kDeadBound + kSlack));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at);
  std::printf("members of a kill -9'd node purged on both others after %lld ms\n",
              static_cast<long long>(took.count()));
  EXPECT_EQ(StateOf(a, "n2"), "dead");
  EXPECT_EQ(StateOf(c, "n2"), "dead");
  EXPECT_TRUE(a.WhichGroups("app")->empty());
}

// The registry (mesh-up.sh makes every node a voter): kill -9 of the leader's
// process. A new leader is elected within 2 s, every acknowledged name is
// still there, and writes work again.
TEST_F(ProcessTest, KillNineOfTheRegistryLeaderLosesNoAcknowledgedName) {
  Client a = Connect(0);
  std::string leader;
  ASSERT_TRUE(WaitFor([&] {
    auto l = a.Leader();
    if (l.ok()) leader = l->leader;
    return !leader.empty();
  }));
  int li = leader[1] - '1';
  int survivor = (li + 1) % 3;
  // Holders on a survivor, so that their names must outlive the kill.
  Client holder = Connect(survivor);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(holder.Register("svc-" + std::to_string(i), "m").ok());
  }
  ASSERT_TRUE(mesh->Signal(li, SIGKILL));
  auto killed_at = Clock::now();
  Client s = Connect(survivor);
  std::string next;
  EXPECT_TRUE(WaitFor(
      [&] {
        auto l = s.Leader();
        if (l.ok()) next = l->leader;
        return !next.empty() && next != leader;
      },
      milliseconds(2000)))
      << "no new leader within 2 s of kill -9 of " << leader;
  std::printf("new registry leader %s %lld ms after kill -9 of %s\n", next.c_str(),
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at).count()),
              leader.c_str());
  for (int i = 0; i < 20; ++i) {
    Result<NameInfo> w = s.WhereisConsistent("svc-" + std::to_string(i));
    ASSERT_TRUE(w.ok()) << "svc-" << i << ": " << w.status().ToString();
    EXPECT_EQ(w->holder, holder.self());
  }
  EXPECT_TRUE(s.Register("after-the-kill").ok());
  MemberId who;
  EXPECT_EQ(s.Register("svc-0", "", &who).code(), Code::kTaken);
  EXPECT_EQ(who, holder.self());
}

// A responder's process killed with kill -9 while requests and dispatches
// are in flight to it: each one has an outcome, none vanishes.
TEST_F(ProcessTest, KillNineOfAResponderLeavesNoCallWithoutAnOutcome) {
  Client sender = Connect(0), w2 = Connect(1), w3 = Connect(2);
  ASSERT_TRUE(w2.Join("svc", "echo").ok());
  ASSERT_TRUE(w3.Join("svc", "echo").ok());
  ASSERT_TRUE(WaitFor([&] {
    auto m = sender.Members("svc", "echo");
    return m.ok() && m->size() == 2;
  }));
  std::set<uint64_t> tickets;
  for (int i = 0; i < 300; ++i) {
    auto t = i % 2 ? sender.DispatchAsync("svc", "echo", "d")
                   : sender.RequestAsync("svc", "echo", "r", milliseconds(8000));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tickets.insert(*t);
  }
  // w3 holds some requests, unanswered, when its node is killed.
  int held = 0;
  ASSERT_TRUE(WaitFor([&] {
    auto d = w3.Receive(milliseconds(5));
    if (d.ok()) {
      if (auto* m = std::get_if<Message>(&*d); m && m->kind == MessageKind::kRequest) ++held;
    }
    return held >= 5;
  }));
  auto killed_at = Clock::now();
  ASSERT_TRUE(mesh->Signal(2, SIGKILL));
  int ok = 0, failed = 0;
  auto deadline = Clock::now() + milliseconds(7000);
  while (!tickets.empty() && Clock::now() < deadline) {
    if (auto d = w2.Receive(milliseconds(2)); d.ok()) {
      if (auto* m = std::get_if<Message>(&*d); m && m->kind == MessageKind::kRequest) {
        EXPECT_TRUE(w2.Reply(*m, "pong").ok());
      }
    }
    auto o = sender.Receive(milliseconds(2));
    if (!o.ok()) continue;
    if (auto* out = std::get_if<Outcome>(&*o)) {
      EXPECT_EQ(tickets.erase(out->ticket), 1u);
      if (out->status.ok()) {
        ++ok;
      } else {
        ++failed;
        EXPECT_EQ(out->status.code(), Code::kUnavailable) << out->status.ToString();
      }
    }
  }
  EXPECT_TRUE(tickets.empty()) << tickets.size() << " calls had no outcome";
  EXPECT_GE(failed, held) << "the requests the dead responder held must fail";
  std::printf(
      "after kill -9 of a responder: %d answered or delivered, %d failed with an error, "
      "all within %lld ms\n",
      ok, failed,
      static_cast<long long>(
          std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at).count()));
}

// Publishes from one process reach a subscriber in another node's process
// complete and in order.
TEST_F(ProcessTest, PublishAcrossProcessesArrivesInOrder) {
  Client pub = Connect(0), sub = Connect(2);
  ASSERT_TRUE(sub.Subscribe("seq.").ok());
  // Subscriptions reach the publisher asynchronously: probe until one arrives.
  ASSERT_TRUE(WaitFor([&] {
    EXPECT_TRUE(pub.Publish("seq.probe", "probe").ok());
    auto d = sub.Receive(milliseconds(5));
    return d.ok() && std::holds_alternative<Message>(*d);
  }));
  while (sub.Receive(milliseconds(50)).ok()) {
  }
  constexpr int kCount = 20000;
  for (int i = 0; i < kCount; ++i) ASSERT_TRUE(pub.Publish("seq.n", std::to_string(i)).ok());
  int next = 0;
  uint64_t lost = 0;
  auto deadline = Clock::now() + milliseconds(10000);
  while (next + int(lost) < kCount && Clock::now() < deadline) {
    auto d = sub.Receive(milliseconds(100));
    if (!d.ok()) continue;
    if (auto* g = std::get_if<GapNotice>(&*d)) lost += g->lost;
    auto* m = std::get_if<Message>(&*d);
    if (m == nullptr || m->payload == "probe") continue;
    ASSERT_EQ(std::stoi(m->payload), next + int(lost)) << "out of order, or lost unreported";
    ++next;
  }
  EXPECT_EQ(next + int(lost), kCount);
  EXPECT_EQ(lost, 0u) << "the burst (1.2 MB) fits the subscriber's queue: nothing is lost";
}

TEST_F(ProcessTest, FrozenNodeIsDeclaredDeadAndRejoinsWhenItResumes) {
  Client a = Connect(0), b = Connect(1), c = Connect(2);
  ASSERT_TRUE(b.Join("app", "g").ok());
  std::string id = b.self().ToString();
  ASSERT_TRUE(
      WaitFor([&] { return HasMember(a, "app", "g", id) && HasMember(c, "app", "g", id); }));

  auto stopped_at = Clock::now();
  ASSERT_TRUE(mesh->Signal(1, SIGSTOP));
  EXPECT_TRUE(WaitFor([&] { return StateOf(a, "n2") == "dead" && StateOf(c, "n2") == "dead"; },
                      kDeadBound + kSlack));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - stopped_at);
  std::printf("SIGSTOP'd node declared dead on both others after %lld ms\n",
              static_cast<long long>(took.count()));
  EXPECT_FALSE(HasMember(a, "app", "g", id));
  EXPECT_FALSE(HasMember(c, "app", "g", id));

  ASSERT_TRUE(mesh->Signal(1, SIGCONT));
  // It rejoins, and what its live session holds is seen again.
  EXPECT_TRUE(WaitFor([&] { return StateOf(a, "n2") == "alive" && StateOf(c, "n2") == "alive"; },
                      milliseconds(5000)));
  EXPECT_TRUE(WaitFor([&] { return HasMember(a, "app", "g", id) && HasMember(c, "app", "g", id); },
                      milliseconds(5000)));
  EXPECT_TRUE(WaitFor([&] { return StateOf(b, "n1") == "alive" && StateOf(b, "n3") == "alive"; }));
}

TEST(ProcessFreezeTest, FrozenLongerThanTheSessionTimeoutKeepsItsLiveSessions) {
  // Sessions time out after 500 ms here; n2 stays frozen until the others
  // declare it dead (at least 900 ms), so its clients are silent, as far as
  // its clock can tell, for longer than the session timeout.
  auto m = ProcessMesh::Up(3, {"--session-timeout-ms", "500"});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ProcessMesh& mesh = **m;
  Result<Client> a = mesh.Connect(0), b = mesh.Connect(1);
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(b->Join("app", "g").ok());
  std::string id = b->self().ToString();
  ASSERT_TRUE(WaitFor([&] { return HasMember(*a, "app", "g", id); }));
  ASSERT_TRUE(mesh.Signal(1, SIGSTOP));
  EXPECT_TRUE(WaitFor([&] { return StateOf(*a, "n2") == "dead"; }, kDeadBound + kSlack));
  ASSERT_TRUE(mesh.Signal(1, SIGCONT));
  EXPECT_TRUE(WaitFor([&] { return StateOf(*a, "n2") == "alive"; }, milliseconds(5000)));
  EXPECT_TRUE(WaitFor([&] { return HasMember(*a, "app", "g", id); }, milliseconds(5000)))
      << "n2 ended its live client's session after the freeze";
  Status s = b->Join("app", "h");
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(ProcessTest, GracefulStopPurgesAtOnce) {
  Client a = Connect(0), c = Connect(2);
  ASSERT_TRUE(c.Join("app", "g").ok());
  std::string id = c.self().ToString();
  ASSERT_TRUE(WaitFor([&] { return HasMember(a, "app", "g", id); }));
  ASSERT_TRUE(mesh->Signal(2, SIGTERM));
  EXPECT_TRUE(WaitFor([&] { return !HasMember(a, "app", "g", id); }, kDeadBound + kSlack));
  EXPECT_EQ(StateOf(a, "n3"), "dead");
}

// Waits, bounded, for a child to exit; its exit code, or -1 if it had not
// (then it is killed, by its pid).
int WaitExit(pid_t pid, milliseconds timeout) {
  int status = 0;
  bool exited = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ProcessCliTest, JoinExitsWithAnErrorWhenItsBrokerDies) {
  auto mesh = ProcessMesh::Up(1);
  ASSERT_TRUE(mesh.ok()) << mesh.status().ToString();
  std::string cli = BinDir() + "/meshbus";
  std::string endpoint = (*mesh)->client_endpoint(0);
  std::vector<std::string> args = {cli, "-b", endpoint, "--timeout", "500", "join", "app", "g"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, cli.c_str(), nullptr, nullptr, argv.data(), environ), 0);
  auto c = (*mesh)->Connect(0);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(WaitFor([&] {
    auto m = c->Members("app", "g");
    return m.ok() && m->size() == 1;
  }));
  ASSERT_TRUE((*mesh)->Signal(0, SIGKILL));
  // The CLI checks its session every second and gives up after a call timeout.
  EXPECT_EQ(WaitExit(pid, milliseconds(10000)), 1);
}

TEST(ProcessDaemonTest, BadFlagsAndUnbindableAddressesExitWithCodeTwo) {
  std::string bin = BinDir() + "/meshbusd";
  struct Case {
    const char* args;
    const char* why;
  } cases[] = {
      {"--node 'bad name'", "invalid node name"},
      {"--node n1 --listen udp://127.0.0.1:1", "not tcp"},
      {"--node n1 --heartbeat-ms 0", "out of range"},
      {"--node n1 --no-such-flag", "unknown flag"},
      {"--node n1 --listen 'tcp://127.0.0.1:*' --client ipc:///nonexistent-dir/x.ipc",
       "cannot bind client"},
      {"--node n1 --listen tcp://192.0.2.1:7100", "address not on this host"},
      {"--node n1 --listen tcp://0.0.0.0:0", "wildcard without --advertise"},
  };
  for (const Case& c : cases) {
    std::string cmd = "'" + bin + "' " + c.args + " >/dev/null 2>&1";
    int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << c.why;
    EXPECT_EQ(WEXITSTATUS(status), 2) << c.why << ": " << c.args;
  }
}

// The netns mesh: each broker in a network namespace of its own, so that a
// link between two of them can be cut for real (blackhole routes) while both
// still reach the third.
class NetnsMeshTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
    if (std::system("ip netns add mb-probe-ns >/dev/null 2>&1 && ip netns del mb-probe-ns") != 0) {
      GTEST_SKIP() << "this machine cannot create network namespaces";
    }
    char tmpl[] = "/tmp/meshbus-ns-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    ASSERT_EQ(Script("up 3 --dir " + dir_), 0) << "netns-mesh.sh up failed";
    up_ = true;
  }
  void TearDown() override {
    if (up_) {
      EXPECT_EQ(Script("down --dir " + dir_), 0);
    }
    if (!dir_.empty()) std::system(("rm -rf '" + dir_ + "'").c_str());
  }
  int Script(const std::string& args) {
    std::string cmd = "MESHBUS_BIN_DIR='" + BinDir() + "' '" + ScriptsDir() + "/netns-mesh.sh' " +
                      args + " >>'" + dir_ + "/script.log' 2>&1";
    int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  Client Connect(int node) {
    ClientOptions o;
    o.endpoint = "ipc://" + dir_ + "/n" + std::to_string(node) + ".ipc";
    auto c = Client::Connect(o);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c.value());
  }
  std::string dir_;
  bool up_ = false;
};

TEST_F(NetnsMeshTest, CutLinkIsDetectedOnBothSidesAndHealConverges) {
  Client n1 = Connect(1), n2 = Connect(2), n3 = Connect(3);
  ASSERT_TRUE(n3.Join("app", "g").ok());
  std::string id = n3.self().ToString();
  ASSERT_TRUE(WaitFor([&] { return HasMember(n1, "app", "g", id); }));

  ASSERT_EQ(Script("cut n1 n3"), 0);
  EXPECT_TRUE(WaitFor([&] { return StateOf(n1, "n3") == "dead" && StateOf(n3, "n1") == "dead"; },
                      milliseconds(5000)));
  EXPECT_FALSE(HasMember(n1, "app", "g", id));
  // n2 still reaches both, and still sees the member.
  EXPECT_EQ(StateOf(n2, "n1"), "alive");
  EXPECT_EQ(StateOf(n2, "n3"), "alive");
  EXPECT_TRUE(HasMember(n2, "app", "g", id));

  ASSERT_EQ(Script("heal n1 n3"), 0);
  EXPECT_TRUE(WaitFor([&] { return StateOf(n1, "n3") == "alive" && StateOf(n3, "n1") == "alive"; },
                      milliseconds(15000)));
  EXPECT_TRUE(WaitFor([&] { return HasMember(n1, "app", "g", id); }, milliseconds(5000)));
}

// The registry across a real partition: n3 cut from both others is a
// minority. It answers no_leader to writes and consistent reads and keeps
// answering whereis from its copy; the majority carries on; after the heal
// every node lists the same names, each with one holder.
TEST_F(NetnsMeshTest, RegistryMinorityAnswersNoLeaderAndTheHealKeepsOneHolder) {
  Client n1 = Connect(1), n3 = Connect(3);
  ASSERT_TRUE(n1.Register("before", "x").ok());
  ASSERT_TRUE(WaitFor([&] { return n3.Whereis("before").ok(); }));
  ASSERT_EQ(Script("cut n1 n3"), 0);
  ASSERT_EQ(Script("cut n2 n3"), 0);
  // One name per attempt. The first attempts may have reached the leader
  // before the cut was noticed: their outcome is unknown (they may commit on
  // the majority side). A no_leader answer means not done.
  std::vector<std::string> refused;
  int attempt = 0;
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string name = "minority-" + std::to_string(attempt++);
        Code code = n3.Register(name).code();
        if (code == Code::kNoLeader) refused.push_back(name);
        return code == Code::kNoLeader;
      },
      milliseconds(15000)));
  EXPECT_EQ(n3.WhereisConsistent("before").status().code(), Code::kNoLeader);
  EXPECT_TRUE(n3.Whereis("before").ok());
  EXPECT_TRUE(WaitFor([&] { return n1.Register("majority").ok(); }, milliseconds(10000)));
  ASSERT_EQ(Script("heal n1 n3"), 0);
  ASSERT_EQ(Script("heal n2 n3"), 0);
  Client n2 = Connect(2);
  auto listing = [](Client& c) {
    std::string out;
    auto names = c.Names();
    if (!names.ok()) return std::string("error");
    for (const NameInfo& n : *names) out += n.name + "=" + n.holder.ToString() + " ";
    return out;
  };
  EXPECT_TRUE(WaitFor(
      [&] {
        std::string a = listing(n1);
        return a == listing(n2) && a == listing(n3) && a.find("majority=") != std::string::npos;
      },
      milliseconds(15000)))
      << listing(n1) << " | " << listing(n2) << " | " << listing(n3);
  for (const std::string& name : refused) {
    EXPECT_EQ(n1.Whereis(name).status().code(), Code::kNotRegistered) << name;
  }
}

}  // namespace
}  // namespace meshbus::testing
