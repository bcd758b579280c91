// Multi-process tests: real meshbusd processes started by scripts/mesh-up.sh,
// killed and frozen by pid, observed through the SDK.
#include <gtest/gtest.h>
#include <signal.h>

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

bool HasMember(Client& c, const std::string& scope, const std::string& group, const std::string& id) {
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
  ASSERT_TRUE(WaitFor([&] { return HasMember(a, "app", "g", id) && HasMember(c, "app", "g", id); }));

  auto killed_at = Clock::now();
  ASSERT_TRUE(mesh->Signal(1, SIGKILL));
  EXPECT_TRUE(WaitFor([&] { return !HasMember(a, "app", "g", id) && !HasMember(c, "app", "g", id); },
                      kDeadBound + kSlack));
  auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at);
  std::printf("members of a kill -9'd node purged on both others after %lld ms\n",
              static_cast<long long>(took.count()));
  EXPECT_EQ(StateOf(a, "n2"), "dead");
  EXPECT_EQ(StateOf(c, "n2"), "dead");
  EXPECT_TRUE(a.WhichGroups("app")->empty());
}

TEST_F(ProcessTest, FrozenNodeIsDeclaredDeadAndRejoinsWhenItResumes) {
  Client a = Connect(0), b = Connect(1), c = Connect(2);
  ASSERT_TRUE(b.Join("app", "g").ok());
  std::string id = b.self().ToString();
  ASSERT_TRUE(WaitFor([&] { return HasMember(a, "app", "g", id) && HasMember(c, "app", "g", id); }));

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

TEST_F(ProcessTest, GracefulStopPurgesAtOnce) {
  Client a = Connect(0), c = Connect(2);
  ASSERT_TRUE(c.Join("app", "g").ok());
  std::string id = c.self().ToString();
  ASSERT_TRUE(WaitFor([&] { return HasMember(a, "app", "g", id); }));
  ASSERT_TRUE(mesh->Signal(2, SIGTERM));
  EXPECT_TRUE(WaitFor([&] { return !HasMember(a, "app", "g", id); }, kDeadBound + kSlack));
  EXPECT_EQ(StateOf(a, "n3"), "dead");
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
      {"--node n1 --listen 'tcp://127.0.0.1:*' --client ipc:///nonexistent-dir/x.ipc", "cannot bind client"},
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

}  // namespace
}  // namespace meshbus::testing
