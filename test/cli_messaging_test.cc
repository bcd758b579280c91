// The CLI's messaging commands (pub, sub, req, serve, stats --json), run as
// real `meshbus` processes against a real 3-node mesh of meshbusd processes.
// Every process a test starts is stopped by its pid, with a bounded wait.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "test/cli_process.h"
#include "test/process_mesh.h"
#include "test/test_mesh.h"

namespace meshbus::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

// The CLI's exit codes (bin/meshbus.cc).
constexpr int kExitTimeout = 3;
constexpr int kExitNobody = 4;

// One mesh for the whole suite: each test uses topics and groups of its own.
class CliMessagingTest : public CliMeshTest {
 protected:
  // Runs a command to completion, bounded in time.
  CliResult Run(int node, std::vector<std::string> args,
                milliseconds timeout = milliseconds(5000)) {
    CliProcess p;
    CliResult r;
    if (!p.Start(On(node, std::move(args)))) {
      r.err = std::string("cannot start meshbus: ") + strerror(errno);
      return r;
    }
    r.code = p.WaitExit(timeout);
    r.out = p.out();
    r.err = p.err();
    return r;
  }

  Client Connect(int i) {
    auto c = mesh->Connect(i, "cli-test");
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return std::move(c.value());
  }
};

// Makes sure that publishes on topics under `prefix` made on node `from` reach
// node `to`. A broker learns of a peer's subscription through ZeroMQ, some
// time after Subscribe returned on the peer, and drops what it publishes
// before that (no gap is reported: it was not for the peer yet). A helper
// client on `to` holds a subscription to `prefix` and probes are published on
// `from` until one arrives; the peer's filter then covers every topic under
// `prefix`, whoever on `to` subscribes to it later.
void EnsureTopicsFlow(Client& on_from, Client& on_to, const std::string& prefix) {
  ASSERT_TRUE(on_to.Subscribe(prefix).ok());
  const Clock::time_point deadline = Clock::now() + milliseconds(5000);
  while (Clock::now() < deadline) {
    ASSERT_TRUE(on_from.Publish(prefix + "probe", "probe").ok());
    Result<Delivery> d = on_to.Receive(milliseconds(20));
    if (d.ok() && std::holds_alternative<Message>(*d)) return;
  }
  FAIL() << "no probe on '" << prefix << "' reached the subscriber's node within 5 s";
}

TEST_F(CliMessagingTest, SubOnOneNodePrintsEveryMessagePublishedOnAnotherInOrder) {
  Client helper_n1 = Connect(0), helper_n3 = Connect(2);
  EnsureTopicsFlow(helper_n1, helper_n3, "cli.");

  CliProcess sub;
  ASSERT_TRUE(
      sub.Start(On(2, {"sub", "cli.msg", "--count", "5", "--json", "--timeout-ms", "10000"})))
      << strerror(errno);
  ASSERT_TRUE(sub.WaitForErrLine("subscribed", milliseconds(5000)))
      << "sub never said it was subscribed; stderr: " << sub.err();

  CliResult pub = Run(0, {"pub", "cli.msg.a", "MESSAGE", "--count", "5"});
  EXPECT_EQ(pub.code, 0) << pub.err;
  EXPECT_EQ(pub.out, "published 5\n");

  EXPECT_EQ(sub.WaitExit(milliseconds(5000)), 0) << "stderr: " << sub.err();
  std::vector<std::string> lines = Lines(sub.out());
  ASSERT_EQ(lines.size(), 5u) << sub.out();
  for (size_t i = 0; i < lines.size(); ++i) {
    Json doc = Json::parse(lines[i], nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(doc.is_object()) << lines[i];
    EXPECT_EQ(doc.value("payload", ""), "MESSAGE" + std::to_string(i)) << lines[i];
    EXPECT_EQ(doc.value("topic", ""), "cli.msg.a") << lines[i];
    EXPECT_EQ(doc.value("from", "").rfind("n1.", 0), 0u) << lines[i];
  }
  EXPECT_EQ(sub.err(), "subscribed\n");  // no gap, no error
}

TEST_F(CliMessagingTest, SubPrintsEachMessageAtOnceAndStopsCleanlyOnSigterm) {
  Client helper_n1 = Connect(0), helper_n3 = Connect(2);
  EnsureTopicsFlow(helper_n1, helper_n3, "cli.");

  CliProcess sub;
  ASSERT_TRUE(sub.Start(On(2, {"sub", "cli.live"}))) << strerror(errno);
  ASSERT_TRUE(sub.WaitForErrLine("subscribed", milliseconds(5000))) << sub.err();
  CliResult pub = Run(0, {"pub", "cli.live.x", "hello"});
  EXPECT_EQ(pub.code, 0) << pub.err;
  EXPECT_EQ(pub.out, "published 1\n");
  // Still running: the line must come through the pipe now, not at exit.
  EXPECT_EQ(sub.WaitForOutLine("cli.live", milliseconds(5000)), "cli.live.x hello")
      << "stdout: " << sub.out() << "; stderr: " << sub.err();
  EXPECT_EQ(sub.Stop(SIGTERM, milliseconds(3000)), 0) << sub.err();
}

TEST_F(CliMessagingTest, SubWithCountExitsWithCodeThreeWhenTheMessagesDoNotCome) {
  auto started = Clock::now();
  CliResult late = Run(2, {"sub", "cli.quiet", "--count", "1", "--timeout-ms", "200"});
  EXPECT_EQ(late.code, kExitTimeout) << late.err;
  EXPECT_NE(late.err.find("timeout: got 0 of 1 messages"), std::string::npos) << late.err;
  EXPECT_EQ(late.out, "");
  EXPECT_LT(Clock::now() - started, milliseconds(3000));
}

TEST_F(CliMessagingTest, ReqGetsTheServedReplyAndNoRespondersAtOnce) {
  CliProcess serve;
  ASSERT_TRUE(serve.Start(On(1, {"serve", "cli", "echo", "--count", "2"}))) << strerror(errno);
  std::optional<std::string> ready = serve.WaitForErrLine("serving as ", milliseconds(5000));
  ASSERT_TRUE(ready) << "serve never said it was ready; stderr: " << serve.err();
  const std::string member = ready->substr(std::string("serving as ").size());

  // Membership reaches other nodes asynchronously: wait until n1 sees it.
  Client n1 = Connect(0);
  ASSERT_TRUE(WaitFor([&] {
    auto m = n1.Members("cli", "echo");
    return m.ok() && m->size() == 1 && (*m)[0].ToString() == member;
  })) << "n1 never saw "
      << member;

  CliResult plain = Run(0, {"req", "cli", "echo", "hello"});
  EXPECT_EQ(plain.code, 0) << plain.err;
  EXPECT_EQ(plain.out, member + ": hello\n");

  CliResult json = Run(0, {"req", "cli", "echo", "again", "--json"});
  EXPECT_EQ(json.code, 0) << json.err;
  Json doc = Json::parse(json.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(doc.is_object()) << json.out;
  EXPECT_EQ(doc.value("from", ""), member);
  EXPECT_EQ(doc.value("payload", ""), member + ": again");

  // --count 2: it leaves after answering two requests, and showed both.
  EXPECT_EQ(serve.WaitExit(milliseconds(5000)), 0) << serve.err();
  std::vector<std::string> shown = Lines(serve.out());
  ASSERT_EQ(shown.size(), 2u) << serve.out();
  EXPECT_EQ(shown[0].rfind("request n1.", 0), 0u) << shown[0];
  EXPECT_EQ(shown[0].substr(shown[0].size() - 6), " hello");

  // Nobody in the group: no_responders at once, not after the timeout.
  auto started = Clock::now();
  CliResult nobody = Run(0, {"req", "cli", "nobody", "hello", "--timeout", "5000"});
  auto took = Clock::now() - started;
  EXPECT_EQ(nobody.code, kExitNobody) << nobody.err;
  EXPECT_NE(nobody.err.find("no_responders"), std::string::npos) << nobody.err;
  EXPECT_EQ(nobody.out, "");
  EXPECT_LT(took, milliseconds(2000));
}

TEST_F(CliMessagingTest, StatsJsonIsOneObjectOfCounters) {
  CliResult pub = Run(0, {"pub", "cli.stats", "x", "--count", "3"});
  ASSERT_EQ(pub.code, 0) << pub.err;

  CliResult stats = Run(0, {"stats", "--json"});
  ASSERT_EQ(stats.code, 0) << stats.err;
  EXPECT_EQ(Lines(stats.out).size(), 1u) << stats.out;
  Json doc = Json::parse(stats.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(doc.is_object()) << stats.out;
  for (const char* name : {"publishes_in", "data_messages_out"}) {
    ASSERT_TRUE(doc.contains(name)) << name << " missing: " << stats.out;
    ASSERT_TRUE(doc[name].is_number_unsigned()) << name;
    // `pub` returns once its broker has every message (its goodbye comes after them).
    EXPECT_GE(doc[name].get<uint64_t>(), 3u) << name;
  }
  for (const auto& [name, value] : doc.items()) {
    EXPECT_TRUE(value.is_number_unsigned()) << name;
  }
}

}  // namespace
}  // namespace meshbus::testing
