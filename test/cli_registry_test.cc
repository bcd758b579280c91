// The CLI's registry commands (register, unregister, whereis, names, leader,
// send --name), run as real `meshbus` processes against a real 3-node mesh
// of meshbusd processes, all three of them voters.
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
#include <set>
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
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRefused = 5;  // taken, not_registered, not_holder
constexpr int kExitNoLeader = 6;

// A session ends this long after its process dies without saying goodbye
// (meshbusd's default session timeout, 1.5 s), then the leader releases its
// names; the rest is slack for a loaded machine.
constexpr milliseconds kReleaseAfterKill{8000};

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Runs `meshbus -b ENDPOINT ARGS...` to completion, bounded in time.
// Registry writes may wait for an election: more time than messaging needs.
CliResult RunCli(const std::string& endpoint, std::vector<std::string> args,
                 milliseconds timeout = milliseconds(15000)) {
  args.insert(args.begin(), {"-b", endpoint});
  CliProcess p;
  CliResult r;
  if (!p.Start(args)) {
    r.err = std::string("cannot start meshbus: ") + strerror(errno);
    return r;
  }
  r.code = p.WaitExit(timeout);
  r.out = p.out();
  r.err = p.err();
  return r;
}

// One mesh for the whole suite: each test uses names of its own.
class CliRegistryTest : public CliMeshTest {
 protected:
  CliResult Run(int node, std::vector<std::string> args) {
    return RunCli(mesh->client_endpoint(node), std::move(args));
  }

  // `whereis NAME --json` on node i: the document, or nullopt if it failed
  // (not_registered, most likely).
  std::optional<Json> Whereis(int node, const std::string& name, bool consistent = false) {
    std::vector<std::string> args = {"whereis", name, "--json"};
    if (consistent) args.push_back("--consistent");
    CliResult r = Run(node, args);
    if (r.code != 0) return std::nullopt;
    Json doc = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_object()) return std::nullopt;
    return doc;
  }

  // Starts `register NAME ARGS...` on node i and waits until it says it holds
  // the name; the holder's member id, or "" (with a test failure).
  std::string StartHolder(CliProcess& holder, int node, const std::string& name,
                          std::vector<std::string> args = {}) {
    args.insert(args.begin(), {"register", name});
    if (!holder.Start(On(node, args))) {
      ADD_FAILURE() << "cannot start meshbus: " << strerror(errno);
      return "";
    }
    const std::string prefix = "registered " + name + " as ";
    std::optional<std::string> line = holder.WaitForOutLine(prefix, milliseconds(15000));
    if (!line) {
      ADD_FAILURE() << "register never said it holds " << name << "; stdout: " << holder.out()
                    << "; stderr: " << holder.err();
      return "";
    }
    return line->substr(prefix.size());
  }

  // True when every node's copy says `holder` holds `name` (holder "": nobody).
  bool EveryNodeSees(const std::string& name, const std::string& holder) {
    for (int i = 0; i < mesh->size(); ++i) {
      std::optional<Json> doc = Whereis(i, name);
      if (holder.empty() ? doc.has_value() : (!doc || doc->value("holder", "") != holder)) {
        return false;
      }
    }
    return true;
  }
};

TEST_F(CliRegistryTest, RegisteredNameIsSeenFromEveryNodeAndTakenForOthers) {
  CliProcess holder;
  const std::string member =
      StartHolder(holder, 1, "cli.reg.seen",
                  {"--meta", R"({"port": 8080, "tags": ["a", "b"]})", "--hold", "60"});
  ASSERT_FALSE(member.empty());
  EXPECT_EQ(member.rfind("n2.", 0), 0u) << member;

  // whereis answers from each broker's copy, which may lag the leader briefly.
  ASSERT_TRUE(WaitFor([&] { return EveryNodeSees("cli.reg.seen", member); }, milliseconds(10000)))
      << "not every node sees " << member << " holding cli.reg.seen";

  // --json: the metadata embedded as the JSON it is.
  std::optional<Json> doc = Whereis(2, "cli.reg.seen");
  ASSERT_TRUE(doc);
  EXPECT_EQ(doc->value("name", ""), "cli.reg.seen");
  EXPECT_EQ(doc->value("node", ""), "n2");
  EXPECT_EQ((*doc)["metadata"], Json::parse(R"({"port": 8080, "tags": ["a", "b"]})")) << *doc;

  // The leader's answer, linearizable, from a node that is not the holder's.
  std::optional<Json> consistent = Whereis(0, "cli.reg.seen", /*consistent=*/true);
  ASSERT_TRUE(consistent);
  EXPECT_EQ(consistent->value("holder", ""), member);

  // The table: a header, then the name, its holder and the compact metadata.
  CliResult text = Run(2, {"whereis", "cli.reg.seen"});
  EXPECT_EQ(text.code, 0) << text.err;
  std::vector<std::string> lines = Lines(text.out);
  ASSERT_EQ(lines.size(), 2u) << text.out;
  EXPECT_EQ(lines[0].rfind("NAME", 0), 0u) << lines[0];
  EXPECT_TRUE(Contains(lines[1], member)) << lines[1];
  EXPECT_TRUE(Contains(lines[1], R"({"port":8080,"tags":["a","b"]})")) << lines[1];

  // Another process asking for the name is told who holds it.
  CliResult second = Run(0, {"register", "cli.reg.seen", "--hold", "0"});
  EXPECT_EQ(second.code, kExitRefused) << second.err;
  EXPECT_TRUE(Contains(second.err, "taken")) << second.err;
  EXPECT_TRUE(Contains(second.err, "is held by " + member)) << second.err;
  EXPECT_EQ(second.out, "");

  // Only the holder's session may release it.
  CliResult unregister = Run(2, {"unregister", "cli.reg.seen"});
  EXPECT_EQ(unregister.code, kExitRefused) << unregister.err;
  EXPECT_TRUE(Contains(unregister.err, "not_holder")) << unregister.err;
  EXPECT_TRUE(EveryNodeSees("cli.reg.seen", member));

  // Stopped, the holder ends its session, and the registry releases the name.
  EXPECT_EQ(holder.Stop(SIGTERM, milliseconds(5000)), 0) << holder.err();
  EXPECT_TRUE(WaitFor([&] { return EveryNodeSees("cli.reg.seen", ""); }, milliseconds(10000)))
      << "cli.reg.seen was not released everywhere after its holder exited";
  CliResult gone = Run(0, {"whereis", "cli.reg.seen", "--consistent"});
  EXPECT_EQ(gone.code, kExitRefused) << gone.err;
  EXPECT_TRUE(Contains(gone.err, "not_registered")) << gone.err;
  EXPECT_EQ(gone.out, "");

  // Free again: anyone may take it.
  CliResult again = Run(2, {"register", "cli.reg.seen", "--hold", "0"});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(again.out.rfind("registered cli.reg.seen as n3.", 0), 0u) << again.out;
}

TEST_F(CliRegistryTest, NamesListsByPrefixWithMetadataAsJsonOrString) {
  CliProcess a, b, other;
  const std::string holder_a = StartHolder(a, 0, "cli.names.a", {"--meta", "[1, 2]"});
  const std::string holder_b = StartHolder(b, 2, "cli.names.b");
  const std::string holder_other = StartHolder(other, 1, "cli.other");
  ASSERT_FALSE(holder_a.empty() || holder_b.empty() || holder_other.empty());

  Json listed;
  ASSERT_TRUE(WaitFor(
      [&] {
        CliResult r = Run(1, {"names", "cli.names.", "--json"});
        if (r.code != 0) return false;
        listed = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
        return listed.is_array() && listed.size() == 2;
      },
      milliseconds(10000)))
      << "n2 never listed both names: " << listed;
  EXPECT_EQ(listed[0].value("name", ""), "cli.names.a");
  EXPECT_EQ(listed[0].value("holder", ""), holder_a);
  EXPECT_EQ(listed[0]["metadata"], Json::parse("[1,2]"));
  EXPECT_EQ(listed[1].value("name", ""), "cli.names.b");
  EXPECT_EQ(listed[1].value("holder", ""), holder_b);
  EXPECT_EQ(listed[1]["metadata"], "");  // none given: empty, not JSON, so a string

  // Metadata another client stored that is not JSON comes out as a string.
  auto client = mesh->Connect(0, "cli-test");
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  ASSERT_TRUE(client->Register("cli.names.raw", "not json").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        CliResult r = Run(0, {"names", "cli.names.raw", "--json"});
        listed = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
        return r.code == 0 && listed.is_array() && listed.size() == 1;
      },
      milliseconds(10000)));
  EXPECT_EQ(listed[0]["metadata"], "not json");

  // Without a prefix, every name; as a table, one row each.
  CliResult all = Run(1, {"names"});
  EXPECT_EQ(all.code, 0) << all.err;
  std::vector<std::string> rows = Lines(all.out);
  ASSERT_GE(rows.size(), 4u) << all.out;
  EXPECT_EQ(rows[0].rfind("NAME", 0), 0u) << rows[0];
  std::set<std::string> names;
  for (size_t i = 1; i < rows.size(); ++i) names.insert(rows[i].substr(0, rows[i].find(' ')));
  for (const char* name : {"cli.names.a", "cli.names.b", "cli.other"}) {
    EXPECT_EQ(names.count(name), 1u) << name << " missing: " << all.out;
  }

  // Nothing under a prefix: an empty list, and success.
  CliResult none = Run(1, {"names", "cli.nothing.", "--json"});
  EXPECT_EQ(none.code, 0) << none.err;
  EXPECT_EQ(none.out, "[]\n");

  for (CliProcess* p : {&a, &b, &other}) EXPECT_EQ(p->Stop(SIGINT, milliseconds(5000)), 0);
}

TEST_F(CliRegistryTest, KilledHolderLosesItsNameOnceItsSessionTimesOut) {
  CliProcess holder;
  const std::string member = StartHolder(holder, 2, "cli.reg.killed");
  ASSERT_FALSE(member.empty());
  ASSERT_TRUE(
      WaitFor([&] { return EveryNodeSees("cli.reg.killed", member); }, milliseconds(10000)));

  // No goodbye: the broker notices the silence, and the leader releases it.
  EXPECT_EQ(holder.Stop(SIGKILL, milliseconds(5000)), -1);
  EXPECT_TRUE(WaitFor([&] { return EveryNodeSees("cli.reg.killed", ""); }, kReleaseAfterKill))
      << "cli.reg.killed still held after its holder was killed";
}

TEST_F(CliRegistryTest, LeaderJsonShowsOneLeaderAndThreeVotersOnEveryNode) {
  // Every broker knows the same leader (an election may still be running),
  // and shows the leader's replication progress (a follower relays it; when
  // the leader is slow to answer, the progress is blank and it is asked again).
  auto has_progress = [](const Json& doc) {
    if (!doc["voters"].is_array() || doc["voters"].empty()) return false;
    for (const Json& v : doc["voters"]) {
      if (!v["match"].is_number_unsigned()) return false;
    }
    return true;
  };
  std::vector<Json> docs(mesh->size());
  ASSERT_TRUE(WaitFor(
      [&] {
        std::set<std::string> leaders;
        for (int i = 0; i < mesh->size(); ++i) {
          CliResult r = Run(i, {"leader", "--json"});
          if (r.code != 0) return false;
          docs[i] = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
          if (!docs[i].is_object() || !docs[i]["leader"].is_string()) return false;
          if (!has_progress(docs[i])) return false;
          leaders.insert(docs[i]["leader"].get<std::string>());
        }
        return leaders.size() == 1;
      },
      milliseconds(10000)))
      << "the brokers do not agree on one leader, with its progress; n1 says " << docs[0];

  const std::string leader = docs[0]["leader"];
  int leaders_seen = 0;
  for (int i = 0; i < mesh->size(); ++i) {
    const Json& doc = docs[i];
    const std::string node = "n" + std::to_string(i + 1);
    EXPECT_EQ(doc.value("node", ""), node) << doc;
    EXPECT_GE(doc.value("term", 0u), 1u) << doc;
    EXPECT_GE(doc.value("commit", 0u), 1u) << doc;
    EXPECT_TRUE(doc["problem"].is_null()) << doc;
    ASSERT_EQ(doc["voters"].size(), 3u) << doc;
    EXPECT_EQ(doc["learners"], Json::array()) << doc;
    std::set<std::string> voters;
    for (const Json& v : doc["voters"]) {
      voters.insert(v.value("node", ""));
      EXPECT_EQ(v.value("alive", false), true) << v;
      EXPECT_TRUE(v["active"].is_boolean()) << v;
      // The leader does not replicate to itself.
      if (v.value("node", "") != leader) {
        EXPECT_TRUE(v["replication"].is_string()) << v;
      }
    }
    EXPECT_EQ(voters, (std::set<std::string>{"n1", "n2", "n3"})) << doc;
    if (node == leader) {
      ++leaders_seen;
      EXPECT_EQ(doc.value("role", ""), "leader") << doc;
    } else {
      EXPECT_EQ(doc.value("role", ""), "follower") << doc;
    }
  }
  EXPECT_EQ(leaders_seen, 1);

  // The text form: the summary, then one row per voter.
  CliResult text = Run(0, {"leader"});
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_TRUE(Contains(text.out, "leader  ")) << text.out;
  EXPECT_TRUE(Contains(text.out, leader)) << text.out;
  size_t voter_rows = 0;
  for (const std::string& line : Lines(text.out)) voter_rows += Contains(line, " voter ");
  EXPECT_EQ(voter_rows, 3u) << text.out;
}

TEST_F(CliRegistryTest, SendByNameReachesTheHolderWherever) {
  CliProcess holder;
  const std::string member = StartHolder(holder, 2, "cli.reg.inbox");
  ASSERT_FALSE(member.empty());
  ASSERT_TRUE(
      WaitFor([&] { return Whereis(0, "cli.reg.inbox").has_value(); }, milliseconds(10000)));

  CliResult sent = Run(0, {"send", "--name", "cli.reg.inbox", "hello"});
  EXPECT_EQ(sent.code, 0) << sent.err;
  EXPECT_EQ(sent.out, member + "\n");
  // The holder prints what is sent to it.
  std::optional<std::string> got = holder.WaitForOutLine("direct ", milliseconds(5000));
  ASSERT_TRUE(got) << holder.out();
  EXPECT_EQ(got->substr(got->size() - 6), " hello") << *got;

  CliResult nobody = Run(0, {"send", "--name", "cli.reg.nobody", "hello"});
  EXPECT_EQ(nobody.code, kExitRefused) << nobody.err;
  EXPECT_TRUE(Contains(nobody.err, "not_registered")) << nobody.err;

  // --name takes the place of the member id, not of the message.
  EXPECT_EQ(Run(0, {"send", "--name", "cli.reg.inbox"}).code, kExitUsage);
  EXPECT_EQ(Run(0, {"send", "--name", "cli.reg.inbox", "a", "b"}).code, kExitUsage);
  EXPECT_EQ(Run(0, {"send", "hello"}).code, kExitUsage);

  EXPECT_EQ(holder.Stop(SIGTERM, milliseconds(5000)), 0) << holder.err();
}

TEST_F(CliRegistryTest, BadNamesAndMetadataAreRefusedWithClearErrors) {
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string error;  // in stderr
  };
  const std::vector<Case> cases = {
      {{"register", ""}, kExitError, "invalid_argument: name is empty"},
      {{"register", "tab\there"}, kExitError, "invalid_argument: name contains a control"},
      {{"register", std::string(256, 'x')}, kExitError, "longer than 255 bytes"},
      {{"register", "cli.bad", "--meta", "{not json"},
       kExitError,
       "invalid_argument: --meta is not valid JSON: "},
      {{"register", "cli.bad", "--meta", "\"" + std::string(5000, 'x') + "\""},
       kExitError,
       "invalid_argument: --meta: metadata is larger than 4096 bytes"},
      {{"register", "cli.bad", "--hold", "-1"}, kExitUsage, "--hold"},
      {{"whereis", ""}, kExitError, "invalid_argument: name is empty"},
      {{"unregister", "bad\nname"}, kExitError, "invalid_argument: name contains a control"},
      {{"whereis", "cli.nobody.holds.this"}, kExitRefused, "not_registered"},
      {{"unregister", "cli.nobody.holds.this"}, kExitRefused, "not_registered"},
  };
  for (const Case& c : cases) {
    CliResult r = Run(0, c.args);
    std::string shown = c.args[0] + " " + c.args[1].substr(0, 20);
    EXPECT_EQ(r.code, c.code) << shown << ": " << r.err;
    EXPECT_TRUE(Contains(r.err, c.error)) << shown << ": " << r.err;
    EXPECT_EQ(r.out, "") << shown;
  }
  // Nothing was registered by those.
  EXPECT_FALSE(Whereis(0, "cli.bad", /*consistent=*/true));
}

// One voter of two, alone: it never has a majority, so there is no leader.
TEST(CliRegistryNoLeaderTest, WritesConsistentReadsAndLeaderExitWithCodeSix) {
  auto mesh = ProcessMesh::Up(1, {"--voters", "n1,n2"});
  ASSERT_TRUE(mesh.ok()) << mesh.status().ToString();
  const std::string broker = (*mesh)->client_endpoint(0);

  CliResult leader = RunCli(broker, {"leader"});
  EXPECT_EQ(leader.code, kExitNoLeader) << leader.err;
  EXPECT_TRUE(Contains(leader.out, "none known")) << leader.out;
  EXPECT_TRUE(Contains(leader.err, "no_leader")) << leader.err;

  CliResult json = RunCli(broker, {"leader", "--json"});
  EXPECT_EQ(json.code, kExitNoLeader) << json.err;
  Json doc = Json::parse(json.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(doc.is_object()) << json.out;
  EXPECT_TRUE(doc["leader"].is_null()) << doc;
  ASSERT_EQ(doc["voters"].size(), 2u) << doc;
  EXPECT_EQ(doc["voters"][1].value("node", ""), "n2") << doc;
  EXPECT_EQ(doc["voters"][1].value("alive", true), false) << doc;

  // Nothing is registered, and the answer says why.
  CliResult reg = RunCli(broker, {"register", "cli.orphan", "--hold", "0"});
  EXPECT_EQ(reg.code, kExitNoLeader) << reg.err;
  EXPECT_TRUE(Contains(reg.err, "no_leader")) << reg.err;
  EXPECT_EQ(reg.out, "");
  CliResult consistent = RunCli(broker, {"whereis", "cli.orphan", "--consistent"});
  EXPECT_EQ(consistent.code, kExitNoLeader) << consistent.err;
  // The local copy still answers.
  CliResult local = RunCli(broker, {"whereis", "cli.orphan"});
  EXPECT_EQ(local.code, kExitRefused) << local.err;
  EXPECT_TRUE(Contains(local.err, "not_registered")) << local.err;
}

}  // namespace
}  // namespace meshbus::testing
