// Tests of broker/registry.h: registration and its refusals, releases of a
// member and of a node's incarnations, records (put, create, delete, which no
// release touches), listings, the exact changes each command reports,
// snapshots (and those written before records existed), determinism over
// random command sequences (against a naive model), and the codec's refusal
// of bad bytes.

#include "broker/registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <msgpack.hpp>

namespace meshbus::registry {
namespace {

MemberId M(const std::string& node, uint64_t incarnation, uint64_t session) {
  return MemberId{node, incarnation, session};
}

const MemberId kA = M("n1", 0xa, 1);
const MemberId kB = M("n1", 0xa, 2);      // another session of kA's node
const MemberId kANext = M("n1", 0xb, 1);  // kA's session number, next incarnation
const MemberId kR = M("n2", 0xc, 1);      // on another node

// "registered svc n1.a.1 [meta]": one line per change, comparable in one EXPECT.
std::string Line(const Change& c) {
  return std::string(ChangeKindName(c.kind)) + " " + c.name + " " + c.holder.ToString() + " [" +
         c.metadata + "]";
}
std::vector<std::string> Lines(const std::vector<Change>& changes) {
  std::vector<std::string> out;
  for (const Change& c : changes) out.push_back(Line(c));
  return out;
}
// The whole outcome as one string, so mismatches print readably.
std::string Describe(const Outcome& o) {
  std::string s(VerdictName(o.verdict));
  if (o.holder) s += " holder=" + o.holder->ToString();
  for (const Change& c : o.changes) s += "; " + Line(c);
  return s;
}

Outcome MustApply(Registry& r, const Command& c) {
  Result<Outcome> res = r.Apply(c);
  EXPECT_TRUE(res.ok()) << res.status().ToString();
  return res.ok() ? *res : Outcome{};
}

std::vector<std::string> NameList(const std::vector<Entry>& entries) {
  std::vector<std::string> out;
  for (const Entry& e : entries) out.push_back(e.name);
  return out;
}

using Names = std::vector<std::string>;

// One command of a scenario and what it must do; steps run in order on one
// registry.
struct Step {
  const char* label;
  Command command;
  Verdict verdict;
  std::optional<MemberId> holder;
  std::vector<std::string> changes;
};

void RunSteps(Registry& r, const std::vector<Step>& steps) {
  for (const Step& s : steps) {
    Outcome o = MustApply(r, s.command);
    EXPECT_EQ(o.verdict, s.verdict) << s.label << ": " << Describe(o);
    EXPECT_EQ(o.holder, s.holder) << s.label << ": " << Describe(o);
    EXPECT_EQ(Lines(o.changes), s.changes) << s.label;
  }
}

TEST(RegistryTest, RegisterTakenAndIdempotent) {
  Registry r;
  RunSteps(r,
           {
               {"a free name",
                Register{"svc", kA, "m1"},
                Verdict::kOk,
                {},
                {"registered svc n1.a.1 [m1]"}},
               {"the holder again, same metadata: nothing to report",
                Register{"svc", kA, "m1"},
                Verdict::kOk,
                {},
                {}},
               {"the holder again, new metadata: replaced",
                Register{"svc", kA, "m2"},
                Verdict::kOk,
                {},
                {"registered svc n1.a.1 [m2]"}},
               {"another session of the node", Register{"svc", kB, "x"}, Verdict::kTaken, kA, {}},
               {"same session number, next incarnation",
                Register{"svc", kANext, ""},
                Verdict::kTaken,
                kA,
                {}},
               {"another node", Register{"svc", kR, ""}, Verdict::kTaken, kA, {}},
               {"a second name for the holder",
                Register{"svc2", kA, ""},
                Verdict::kOk,
                {},
                {"registered svc2 n1.a.1 []"}},
               {"a name for another member",
                Register{"other", kB, ""},
                Verdict::kOk,
                {},
                {"registered other n1.a.2 []"}},
           });
  EXPECT_EQ(r.Whereis("svc"), (Entry{"svc", kA, "m2"}));
  EXPECT_EQ(r.Whereis("svc2"), (Entry{"svc2", kA, ""}));
  EXPECT_EQ(r.Whereis("sv"), std::nullopt);
  EXPECT_EQ(r.Whereis("svc3"), std::nullopt);
  EXPECT_EQ(r.size(), 3u);
  EXPECT_EQ(r.NamesOf(kA), (Names{"svc", "svc2"}));
  EXPECT_EQ(r.NamesOf(kB), (Names{"other"}));
  EXPECT_EQ(r.NamesOf(kR), Names{});
}

TEST(RegistryTest, Unregister) {
  Registry r;
  RunSteps(
      r,
      {
          {"setup", Register{"svc", kA, "m"}, Verdict::kOk, {}, {"registered svc n1.a.1 [m]"}},
          {"an unknown name", Unregister{"nope", kA}, Verdict::kNotRegistered, {}, {}},
          {"a name the member's name prefixes",
           Unregister{"sv", kA},
           Verdict::kNotRegistered,
           {},
           {}},
          {"another session of the node", Unregister{"svc", kB}, Verdict::kNotHolder, kA, {}},
          {"same session number, next incarnation",
           Unregister{"svc", kANext},
           Verdict::kNotHolder,
           kA,
           {}},
          {"another node", Unregister{"svc", kR}, Verdict::kNotHolder, kA, {}},
          {"the holder", Unregister{"svc", kA}, Verdict::kOk, {}, {"unregistered svc n1.a.1 [m]"}},
          {"the holder again", Unregister{"svc", kA}, Verdict::kNotRegistered, {}, {}},
          {"free for another",
           Register{"svc", kB, ""},
           Verdict::kOk,
           {},
           {"registered svc n1.a.2 []"}},
      });
  EXPECT_EQ(r.NamesOf(kA), Names{});
  EXPECT_EQ(r.NamesOf(kB), (Names{"svc"}));
  EXPECT_EQ(Registry().Apply(Unregister{"svc", kA})->verdict, Verdict::kNotRegistered);
}

TEST(RegistryTest, ReleaseMember) {
  Registry r;
  for (const char* name : {"b", "a", "c"}) MustApply(r, Register{name, kA, name});
  MustApply(r, Register{"d", kB, ""});
  MustApply(r, Register{"e", kR, ""});
  RunSteps(
      r,
      {
          {"releases in name order",
           ReleaseMember{kA},
           Verdict::kOk,
           {},
           {"unregistered a n1.a.1 [a]", "unregistered b n1.a.1 [b]", "unregistered c n1.a.1 [c]"}},
          {"again: nothing left", ReleaseMember{kA}, Verdict::kOk, {}, {}},
          {"a member without names", ReleaseMember{M("n3", 1, 1)}, Verdict::kOk, {}, {}},
          {"same session number, other incarnation", ReleaseMember{kANext}, Verdict::kOk, {}, {}},
      });
  EXPECT_EQ(NameList(r.Names()), (Names{"d", "e"}));
  EXPECT_EQ(r.NamesOf(kA), Names{});
  EXPECT_EQ(r.NamesOf(kB), (Names{"d"}));
  // A session's end leaves no tombstone (a member id is not reused, and
  // tombstones for every session ever would grow without bound).
  EXPECT_EQ(MustApply(r, Register{"a", kA, ""}).verdict, Verdict::kOk);
}

TEST(RegistryTest, ReleaseNode) {
  // Members of n1 over three incarnations, and of nodes around it in order.
  const MemberId kZero = M("n1", 0, 5), kOld = M("n1", 9, 1), kOld2 = M("n1", 9, 2),
                 kEq = M("n1", 10, 1), kNewer = M("n1", 11, 1), kN10 = M("n10", 1, 1),
                 kN0 = M("n0", 10, 1);
  const std::vector<Register> kSetup = {
      {"old-3", kOld2, ""}, {"old-1", kOld, ""}, {"old-2", kOld2, ""}, {"eq", kEq, ""},
      {"new", kNewer, ""},  {"n10", kN10, ""},   {"n0", kN0, ""},      {"zero", kZero, ""},
  };
  const struct {
    const char* label;
    ReleaseNode command;
    std::vector<std::string> changes;  // holder order, then name order
    Names left;
  } kCases[] = {
      {"older and equal go, newer stays",
       {"n1", 10},
       {"unregistered zero n1.0.5 []", "unregistered old-1 n1.9.1 []",
        "unregistered old-2 n1.9.2 []", "unregistered old-3 n1.9.2 []",
        "unregistered eq n1.a.1 []"},
       {"n0", "n10", "new"}},
      {"only the oldest",
       {"n1", 0},
       {"unregistered zero n1.0.5 []"},
       {"eq", "n0", "n10", "new", "old-1", "old-2", "old-3"}},
      {"between incarnations",
       {"n1", 8},
       {"unregistered zero n1.0.5 []"},
       {"eq", "n0", "n10", "new", "old-1", "old-2", "old-3"}},
      {"every incarnation",
       {"n1", UINT64_MAX},
       {"unregistered zero n1.0.5 []", "unregistered old-1 n1.9.1 []",
        "unregistered old-2 n1.9.2 []", "unregistered old-3 n1.9.2 []", "unregistered eq n1.a.1 []",
        "unregistered new n1.b.1 []"},
       {"n0", "n10"}},
      {"a node name that prefixes others",
       {"n", UINT64_MAX},
       {},
       {"eq", "n0", "n10", "new", "old-1", "old-2", "old-3", "zero"}},
      {"below the node's incarnations",
       {"n10", 0},
       {},
       {"eq", "n0", "n10", "new", "old-1", "old-2", "old-3", "zero"}},
      {"unknown node",
       {"n9", 100},
       {},
       {"eq", "n0", "n10", "new", "old-1", "old-2", "old-3", "zero"}},
  };
  for (const auto& c : kCases) {
    Registry r;
    for (const Register& reg : kSetup) MustApply(r, reg);
    Outcome o = MustApply(r, c.command);
    EXPECT_EQ(o.verdict, Verdict::kOk) << c.label;
    EXPECT_EQ(Lines(o.changes), c.changes) << c.label;
    EXPECT_EQ(NameList(r.Names()), c.left) << c.label;
    EXPECT_EQ(r.ReleasedIncarnation(c.command.node), c.command.incarnation) << c.label;
    // The index agrees with the names.
    size_t indexed = 0;
    for (const MemberId& m : {kZero, kOld, kOld2, kEq, kNewer, kN10, kN0}) {
      for (const std::string& name : r.NamesOf(m)) {
        std::optional<Entry> e = r.Whereis(name);
        ASSERT_TRUE(e.has_value()) << c.label << ": " << name;
        EXPECT_EQ(e->holder, m) << c.label;
        ++indexed;
      }
    }
    EXPECT_EQ(indexed, r.size()) << c.label;
  }
}

TEST(RegistryTest, ReleasedIncarnationsCannotRegister) {
  Registry r;
  MustApply(r, Register{"held", kA, ""});
  RunSteps(
      r,
      {
          {"release n1 up to a",
           ReleaseNode{"n1", 0xa},
           Verdict::kOk,
           {},
           {"unregistered held n1.a.1 []"}},
          // A registration proposed before the release but committed after
          // it must not hold a name forever.
          {"a released member", Register{"x", kA, ""}, Verdict::kHolderGone, {}, {}},
          {"a new session of the released incarnation",
           Register{"x", M("n1", 0xa, 99), ""},
           Verdict::kHolderGone,
           {},
           {}},
          {"an older incarnation", Register{"x", M("n1", 1, 1), ""}, Verdict::kHolderGone, {}, {}},
          {"the next incarnation",
           Register{"x", kANext, ""},
           Verdict::kOk,
           {},
           {"registered x n1.b.1 []"}},
          {"a taken name outranks a gone holder",
           Register{"x", kA, ""},
           Verdict::kTaken,
           kANext,
           {}},
          {"another node", Register{"y", kR, ""}, Verdict::kOk, {}, {"registered y n2.c.1 []"}},
          {"a smaller release changes nothing", ReleaseNode{"n1", 1}, Verdict::kOk, {}, {}},
          {"still refused", Register{"z", kA, ""}, Verdict::kHolderGone, {}, {}},
          {"a released holder's unregister",
           Unregister{"held", kA},
           Verdict::kNotRegistered,
           {},
           {}},
      });
  EXPECT_EQ(r.ReleasedIncarnation("n1"), 0xau);
  EXPECT_EQ(r.ReleasedIncarnation("n2"), std::nullopt);
  EXPECT_EQ(r.ReleasedIncarnation("n"), std::nullopt);
}

// A node declared dead that comes back (a healed partition) may register
// again; older incarnations may not.
TEST(RegistryTest, ReadmitNode) {
  Registry r;
  MustApply(r, Register{"held", kA, ""});
  RunSteps(r, {
                  {"release n1 up to a",
                   ReleaseNode{"n1", 0xa},
                   Verdict::kOk,
                   {},
                   {"unregistered held n1.a.1 []"}},
                  {"refused", Register{"x", kA, ""}, Verdict::kHolderGone, {}, {}},
                  {"readmit of an older incarnation changes nothing",
                   ReadmitNode{"n1", 0xb},
                   Verdict::kOk,
                   {},
                   {}},
                  {"still refused", Register{"x", kA, ""}, Verdict::kHolderGone, {}, {}},
                  {"readmit a", ReadmitNode{"n1", 0xa}, Verdict::kOk, {}, {}},
                  {"a registers again",
                   Register{"x", kA, ""},
                   Verdict::kOk,
                   {},
                   {"registered x n1.a.1 []"}},
                  {"an older incarnation stays refused",
                   Register{"y", M("n1", 9, 1), ""},
                   Verdict::kHolderGone,
                   {},
                   {}},
                  {"readmit of an unknown node", ReadmitNode{"n7", 3}, Verdict::kOk, {}, {}},
              });
  EXPECT_EQ(r.ReleasedIncarnation("n1"), 9u);
  EXPECT_EQ(r.ReleasedIncarnation("n7"), std::nullopt);
  MustApply(r, ReleaseNode{"n2", 0});
  MustApply(r, ReadmitNode{"n2", 0});
  EXPECT_EQ(r.ReleasedIncarnation("n2"), std::nullopt);
}

TEST(RegistryTest, InvalidCommandsChangeNothing) {
  Registry r;
  MustApply(r, Register{"svc", kA, "m"});
  MustApply(r, ReleaseNode{"n9", 1});
  const std::string before = r.Snapshot();
  const struct {
    const char* label;
    Command command;
    std::string message;  // a part of the Status's message
  } kCases[] = {
      {"empty name", Register{"", kB, ""}, "name is empty"},
      {"name over 255 bytes", Register{std::string(256, 'x'), kB, ""}, "longer than 255 bytes"},
      {"newline in name", Register{"a\nb", kB, ""}, "control character"},
      {"DEL in name", Register{"a\x7f", kB, ""}, "control character"},
      {"NUL in name", Register{std::string("a\0b", 3), kB, ""}, "control character"},
      {"metadata over the limit", Register{"n", kB, std::string(4097, 'm')},
       "metadata is larger than 4096 bytes"},
      {"holder without node", Register{"n", M("", 1, 1), ""}, "node name is empty"},
      {"holder node with a dot", Register{"n", M("n1.x", 1, 1), ""}, "may only hold"},
      {"holder node too long", Register{"n", M(std::string(65, 'n'), 1, 1), ""}, "longer than 64"},
      {"unregister, empty name", Unregister{"", kA}, "name is empty"},
      {"unregister, bad holder", Unregister{"svc", M("a b", 1, 1)}, "may only hold"},
      {"release of a bad member", ReleaseMember{M("", 0xa, 1)}, "node name is empty"},
      {"release of an empty node", ReleaseNode{"", 1}, "node name is empty"},
      {"release of a bad node", ReleaseNode{"n/1", 1}, "may only hold"},
  };
  for (const auto& c : kCases) {
    Result<Outcome> res = r.Apply(c.command);
    ASSERT_FALSE(res.ok()) << c.label;
    EXPECT_EQ(res.status().code(), Code::kInvalidArgument) << c.label;
    EXPECT_NE(res.status().message().find(c.message), std::string::npos)
        << c.label << ": " << res.status().message();
    EXPECT_EQ(r.Snapshot(), before) << c.label;
  }
}

TEST(RegistryTest, LimitsAreInclusive) {
  Registry r;
  const std::string kLongest(kMaxNameBytes, 'x');
  const std::string kBiggest(kMaxMetadataBytes, '\xff');
  const std::string kBinary("\0\x01\xff\n", 4);
  for (const Register& c :
       {Register{kLongest, kA, kBiggest}, Register{"caf\xc3\xa9/\xc3\xbc", kA, kBinary},
        Register{" ~", M(std::string(64, 'n'), UINT64_MAX, UINT64_MAX), ""}}) {
    EXPECT_EQ(MustApply(r, c).verdict, Verdict::kOk) << c.name;
    EXPECT_EQ(r.Whereis(c.name), (Entry{c.name, c.holder, c.metadata}));
  }
}

TEST(RegistryTest, NamesByPrefix) {
  Registry r;
  for (const char* name :
       {"orders2", "b", "orders/2", "abc", "a", "orders/1", "ab", "\xc3\xa9t\xc3\xa9"}) {
    MustApply(r, Register{name, kA, ""});
  }
  const struct {
    std::string prefix;
    Names want;
  } kCases[] = {
      {"", {"a", "ab", "abc", "b", "orders/1", "orders/2", "orders2", "\xc3\xa9t\xc3\xa9"}},
      {"a", {"a", "ab", "abc"}},
      {"ab", {"ab", "abc"}},
      {"abc", {"abc"}},
      {"abcd", {}},
      {"orders", {"orders/1", "orders/2", "orders2"}},
      {"orders/", {"orders/1", "orders/2"}},
      {"orders/2", {"orders/2"}},
      {"c", {}},
      {"0", {}},
      {"z", {}},
      {"\xc3", {"\xc3\xa9t\xc3\xa9"}},
      {"\xff", {}},
  };
  for (const auto& c : kCases) EXPECT_EQ(NameList(r.Names(c.prefix)), c.want) << c.prefix;
  std::vector<Entry> all = r.Names();
  ASSERT_EQ(all.size(), 8u);
  EXPECT_EQ(all[0], (Entry{"a", kA, ""}));
}

// ---- records -----------------------------------------------------------------

using Records = std::vector<RecordEntry>;

TEST(RegistryTest, RecordsPutCreateDelete) {
  Registry r;
  // Record commands report a verdict only: no holder, no changes for monitors.
  RunSteps(r, {
                  {"put a new key", PutRecord{"sub/a", "v1"}, Verdict::kOk, {}, {}},
                  {"put again: replaced", PutRecord{"sub/a", "v2"}, Verdict::kOk, {}, {}},
                  {"create of a key that is there",
                   CreateRecord{"sub/a", "other"},
                   Verdict::kExists,
                   {},
                   {}},
                  {"create of a new key", CreateRecord{"sub/b", "b1"}, Verdict::kOk, {}, {}},
                  {"create again, same value: still exists",
                   CreateRecord{"sub/b", "b1"},
                   Verdict::kExists,
                   {},
                   {}},
                  {"delete", DeleteRecord{"sub/a"}, Verdict::kOk, {}, {}},
                  {"delete again", DeleteRecord{"sub/a"}, Verdict::kNoRecord, {}, {}},
                  {"delete of a key never there", DeleteRecord{"nope"}, Verdict::kNoRecord, {}, {}},
                  {"create after delete", CreateRecord{"sub/a", "v3"}, Verdict::kOk, {}, {}},
                  {"put of an empty value", PutRecord{"empty", ""}, Verdict::kOk, {}, {}},
              });
  EXPECT_EQ(r.Record("sub/a"), "v3");
  EXPECT_EQ(r.Record("sub/b"), "b1");
  EXPECT_EQ(r.Record("empty"), "");
  EXPECT_EQ(r.Record("sub"), std::nullopt);
  EXPECT_EQ(r.Record("nope"), std::nullopt);
  EXPECT_EQ(r.record_count(), 3u);
  EXPECT_EQ(r.size(), 0u);  // records are not names
  EXPECT_EQ(VerdictName(Verdict::kExists), "exists");
  EXPECT_EQ(VerdictName(Verdict::kNoRecord), "not_found");
}

TEST(RegistryTest, RecordsAndNamesAreApart) {
  Registry r;
  MustApply(r, Register{"svc", kA, "m"});
  MustApply(r, PutRecord{"svc", "a record with a name's key"});
  MustApply(r, PutRecord{"emitter", "written for kA"});
  // No release touches records: they belong to no member.
  MustApply(r, ReleaseMember{kA});
  MustApply(r, ReleaseNode{"n1", UINT64_MAX});
  MustApply(r, ReleaseNode{"n2", UINT64_MAX});
  EXPECT_EQ(r.Whereis("svc"), std::nullopt);
  EXPECT_EQ(r.Records(),
            (Records{{"emitter", "written for kA"}, {"svc", "a record with a name's key"}}));
  // Nor do record commands touch names.
  MustApply(r, ReadmitNode{"n1", 0});
  MustApply(r, Register{"svc", kA, "m"});
  MustApply(r, DeleteRecord{"svc"});
  EXPECT_EQ(r.Whereis("svc"), (Entry{"svc", kA, "m"}));
  EXPECT_EQ(r.Record("svc"), std::nullopt);
}

TEST(RegistryTest, RecordsByPrefix) {
  Registry r;
  for (const char* key : {"store/o/sub/b", "store/o2", "store/o/sub/a", "a", "store/o/emitter",
                          "\xc3\xa9t\xc3\xa9", "store/"}) {
    MustApply(r, PutRecord{key, std::string("v:") + key});
  }
  const struct {
    std::string prefix;
    std::vector<std::string> want;
  } kCases[] = {
      {"",
       {"a", "store/", "store/o/emitter", "store/o/sub/a", "store/o/sub/b", "store/o2",
        "\xc3\xa9t\xc3\xa9"}},
      {"store/", {"store/", "store/o/emitter", "store/o/sub/a", "store/o/sub/b", "store/o2"}},
      {"store/o/", {"store/o/emitter", "store/o/sub/a", "store/o/sub/b"}},
      {"store/o/sub/", {"store/o/sub/a", "store/o/sub/b"}},
      {"store/o/sub/a", {"store/o/sub/a"}},
      {"store/o/sub/ab", {}},
      {"store/o2", {"store/o2"}},
      {"b", {}},
      {"\xc3", {"\xc3\xa9t\xc3\xa9"}},
      {"\xff", {}},
  };
  for (const auto& c : kCases) {
    std::vector<std::string> keys;
    for (const RecordEntry& e : r.Records(c.prefix)) {
      EXPECT_EQ(e.value, "v:" + e.key);
      keys.push_back(e.key);
    }
    EXPECT_EQ(keys, c.want) << c.prefix;
  }
}

TEST(RegistryTest, InvalidRecordCommandsChangeNothing) {
  Registry r;
  MustApply(r, PutRecord{"k", "v"});
  const std::string before = r.Snapshot();
  const struct {
    const char* label;
    Command command;
    Code code;
    std::string message;
  } kCases[] = {
      {"put, empty key", PutRecord{"", "v"}, Code::kInvalidArgument, "record key is empty"},
      {"put, key over 255 bytes", PutRecord{std::string(256, 'k'), "v"}, Code::kInvalidArgument,
       "longer than 255 bytes"},
      {"put, newline in key", PutRecord{"a\nb", "v"}, Code::kInvalidArgument, "control character"},
      {"put, NUL in key", PutRecord{std::string("k\0", 2), "v"}, Code::kInvalidArgument,
       "control character"},
      {"put, value over 64 KiB", PutRecord{"k", std::string(kMaxValueBytes + 1, 'v')},
       Code::kTooLarge, "record value is larger than 65536 bytes"},
      {"create, DEL in key", CreateRecord{"\x7f", "v"}, Code::kInvalidArgument,
       "control character"},
      {"create, value over 64 KiB", CreateRecord{"new", std::string(kMaxValueBytes + 1, 'v')},
       Code::kTooLarge, "larger than"},
      {"delete, empty key", DeleteRecord{""}, Code::kInvalidArgument, "record key is empty"},
      {"delete, key over 255 bytes", DeleteRecord{std::string(256, 'k')}, Code::kInvalidArgument,
       "longer than 255"},
  };
  for (const auto& c : kCases) {
    Result<Outcome> res = r.Apply(c.command);
    ASSERT_FALSE(res.ok()) << c.label;
    EXPECT_EQ(res.status().code(), c.code) << c.label;
    EXPECT_NE(res.status().message().find(c.message), std::string::npos)
        << c.label << ": " << res.status().message();
    EXPECT_EQ(r.Snapshot(), before) << c.label;
  }
}

TEST(RegistryTest, RecordLimitsAreInclusive) {
  Registry r;
  const std::string kLongest(kMaxNameBytes, 'k');
  const std::string kBiggest(kMaxValueBytes, '\xff');
  const std::string kBinary("\0\x01\xff\n", 4);
  MustApply(r, PutRecord{kLongest, kBiggest});
  MustApply(r, CreateRecord{"caf\xc3\xa9 ~", kBinary});
  EXPECT_EQ(r.Record(kLongest), kBiggest);
  EXPECT_EQ(r.Record("caf\xc3\xa9 ~"), kBinary);
  // Through the log and a snapshot too.
  Result<Command> d = DecodeCommand(EncodeCommand(PutRecord{kLongest, kBiggest}));
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_TRUE(*d == Command(PutRecord{kLongest, kBiggest}));
  Registry copy;
  ASSERT_TRUE(copy.Restore(r.Snapshot()).ok());
  EXPECT_EQ(copy.Records(), r.Records());
}

// ---- snapshots -------------------------------------------------------------

TEST(RegistryTest, SnapshotRoundTrip) {
  Registry r;
  MustApply(r, Register{"svc", kA, "meta"});
  MustApply(r, Register{"svc2", kA, std::string("\0bin", 4)});
  MustApply(r, Register{"other", kR, ""});
  MustApply(r, Register{"gone", M("n3", 1, 1), ""});
  MustApply(r, ReleaseNode{"n3", 1});
  const std::string snap = r.Snapshot();
  ASSERT_FALSE(snap.empty());

  // Restored into a registry that holds other things: they are replaced.
  Registry r2;
  MustApply(r2, Register{"stale", kB, ""});
  MustApply(r2, ReleaseNode{"n4", 7});
  ASSERT_TRUE(r2.Restore(snap).ok());
  EXPECT_EQ(r2.Snapshot(), snap);
  EXPECT_EQ(r2.Names(), r.Names());
  EXPECT_EQ(r2.NamesOf(kA), (Names{"svc", "svc2"}));
  EXPECT_EQ(r2.NamesOf(kB), Names{});
  EXPECT_EQ(r2.Whereis("stale"), std::nullopt);
  EXPECT_EQ(r2.ReleasedIncarnation("n3"), 1u);
  EXPECT_EQ(r2.ReleasedIncarnation("n4"), std::nullopt);
  // And it behaves the same from there.
  const std::vector<Command> kThen = {
      Register{"svc", kB, ""},
      Register{"x", M("n3", 1, 2), ""},
      ReleaseMember{kA},
      Unregister{"other", kR},
  };
  for (const Command& c : kThen) {
    EXPECT_EQ(Describe(MustApply(r2, c)), Describe(MustApply(r, c)));
  }
  EXPECT_EQ(r2.Snapshot(), r.Snapshot());

  Registry empty;
  const std::string empty_snap = empty.Snapshot();
  EXPECT_FALSE(empty_snap.empty());
  ASSERT_TRUE(r2.Restore(empty_snap).ok());
  EXPECT_EQ(r2.size(), 0u);
  EXPECT_EQ(r2.NamesOf(kB), Names{});
  EXPECT_EQ(r2.Snapshot(), empty_snap);
}

TEST(RegistryTest, EqualStatesGiveIdenticalSnapshots) {
  Registry r1, r2;
  MustApply(r1, Register{"a", kA, "1"});
  MustApply(r1, Register{"b", kB, "2"});
  MustApply(r1, Register{"c", kR, "3"});
  MustApply(r1, ReleaseNode{"n9", 4});

  // Another history to the same state.
  MustApply(r2, ReleaseNode{"n9", 2});
  MustApply(r2, Register{"c", kR, "old"});
  MustApply(r2, Register{"x", kA, ""});
  MustApply(r2, Register{"b", kB, "2"});
  MustApply(r2, Register{"a", kANext, ""});
  MustApply(r2, ReleaseNode{"n9", 4});
  MustApply(r2, Unregister{"a", kANext});
  MustApply(r2, ReleaseMember{kA});
  MustApply(r2, Register{"a", kA, "1"});
  MustApply(r2, Register{"c", kR, "3"});
  EXPECT_EQ(r1.Snapshot(), r2.Snapshot());
}

TEST(RegistryTest, SnapshotRoundTripWithRecords) {
  Registry r;
  MustApply(r, Register{"svc", kA, "meta"});
  MustApply(r, ReleaseNode{"n3", 1});
  MustApply(r, PutRecord{"store/o/sub/$all", std::string("\0sub", 4)});
  MustApply(r, PutRecord{"store/o/emitter", ""});
  const std::string snap = r.Snapshot();

  Registry r2;
  MustApply(r2, PutRecord{"stale", "x"});
  MustApply(r2, Register{"stale", kB, ""});
  ASSERT_TRUE(r2.Restore(snap).ok());
  EXPECT_EQ(r2.Snapshot(), snap);
  EXPECT_EQ(r2.Records(), r.Records());
  EXPECT_EQ(r2.Record("stale"), std::nullopt);
  EXPECT_EQ(r2.Names(), r.Names());
  EXPECT_EQ(r2.ReleasedIncarnation("n3"), 1u);

  // Equal states, equal bytes: records put, replaced and deleted on the way
  // leave nothing behind.
  Registry r3;
  MustApply(r3, PutRecord{"store/o/emitter", "old"});
  MustApply(r3, PutRecord{"gone", "x"});
  MustApply(r3, ReleaseNode{"n3", 1});
  MustApply(r3, Register{"svc", kA, "meta"});
  MustApply(r3, CreateRecord{"store/o/sub/$all", std::string("\0sub", 4)});
  MustApply(r3, PutRecord{"store/o/emitter", ""});
  MustApply(r3, DeleteRecord{"gone"});
  EXPECT_EQ(r3.Snapshot(), snap);

  // Without records, the bytes are those of the format before records: a
  // data dir written by either restores in the other.
  MustApply(r3, DeleteRecord{"store/o/sub/$all"});
  MustApply(r3, DeleteRecord{"store/o/emitter"});
  Registry names_only;
  MustApply(names_only, Register{"svc", kA, "meta"});
  MustApply(names_only, ReleaseNode{"n3", 1});
  EXPECT_EQ(r3.Snapshot(), names_only.Snapshot());
}

// A snapshot as brokers wrote it before records existed: [1, names, released].
TEST(RegistryTest, RestoresASnapshotFromBeforeRecords) {
  auto bytes = [](const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fill) {
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    fill(pk);
    return std::string(buf.data(), buf.size());
  };
  const std::string old = bytes([](auto& pk) {
    pk.pack_array(3);
    pk.pack_uint64(1);
    pk.pack_array(2);
    pk.pack_array(3);
    pk.pack(std::string("a"));
    pk.pack(std::string("n1.a.1"));
    pk.pack_bin(1);
    pk.pack_bin_body("m", 1);
    pk.pack_array(3);
    pk.pack(std::string("b"));
    pk.pack(std::string("n2.c.1"));
    pk.pack_bin(0);
    pk.pack_array(1);
    pk.pack_array(2);
    pk.pack(std::string("n9"));
    pk.pack_uint64(4);
  });
  Registry r;
  MustApply(r, PutRecord{"dropped by the restore", "x"});
  ASSERT_TRUE(r.Restore(old).ok()) << r.Restore(old).ToString();
  EXPECT_EQ(r.Names(), (std::vector<Entry>{{"a", kA, "m"}, {"b", kR, ""}}));
  EXPECT_EQ(r.ReleasedIncarnation("n9"), 4u);
  EXPECT_EQ(r.Records(), Records{});
  EXPECT_EQ(r.Snapshot(), old);
  // And records can be added from there.
  MustApply(r, CreateRecord{"k", "v"});
  Registry again;
  ASSERT_TRUE(again.Restore(r.Snapshot()).ok());
  EXPECT_EQ(again.Records(), (Records{{"k", "v"}}));
}

// ---- determinism over random sequences ---------------------------------------

// The obvious implementation, O(all names) per release: what Registry must
// agree with.
class Model {
 public:
  Outcome Apply(const Command& command) {
    Outcome out;
    if (const auto* c = std::get_if<Register>(&command)) {
      auto it = names_.find(c->name);
      if (it != names_.end() && it->second.holder != c->holder) {
        out.verdict = Verdict::kTaken;
        out.holder = it->second.holder;
      } else if (it != names_.end()) {
        if (it->second.metadata != c->metadata) {
          it->second.metadata = c->metadata;
          out.changes.push_back({ChangeKind::kRegistered, c->name, c->holder, c->metadata});
        }
      } else if (released_.count(c->holder.node) &&
                 c->holder.incarnation <= released_[c->holder.node]) {
        out.verdict = Verdict::kHolderGone;
      } else {
        names_[c->name] = Entry{c->name, c->holder, c->metadata};
        out.changes.push_back({ChangeKind::kRegistered, c->name, c->holder, c->metadata});
      }
    } else if (const auto* c = std::get_if<Unregister>(&command)) {
      auto it = names_.find(c->name);
      if (it == names_.end()) {
        out.verdict = Verdict::kNotRegistered;
      } else if (it->second.holder != c->holder) {
        out.verdict = Verdict::kNotHolder;
        out.holder = it->second.holder;
      } else {
        out.changes.push_back({ChangeKind::kUnregistered, c->name, c->holder, it->second.metadata});
        names_.erase(it);
      }
    } else if (const auto* c = std::get_if<ReleaseMember>(&command)) {
      Drop([&](const MemberId& m) { return m == c->member; }, &out);
    } else if (const auto* p = std::get_if<PutRecord>(&command)) {
      records_[p->key] = p->value;
    } else if (const auto* c = std::get_if<CreateRecord>(&command)) {
      if (records_.count(c->key)) {
        out.verdict = Verdict::kExists;
      } else {
        records_[c->key] = c->value;
      }
    } else if (const auto* d = std::get_if<DeleteRecord>(&command)) {
      if (records_.erase(d->key) == 0) out.verdict = Verdict::kNoRecord;
    } else if (const auto* a = std::get_if<ReadmitNode>(&command)) {
      auto it = released_.find(a->node);
      if (it != released_.end() && it->second >= a->incarnation) {
        if (a->incarnation == 0) {
          released_.erase(it);
        } else {
          it->second = a->incarnation - 1;
        }
      }
    } else {
      const auto& n = std::get<ReleaseNode>(command);
      Drop([&](const MemberId& m) { return m.node == n.node && m.incarnation <= n.incarnation; },
           &out);
      released_[n.node] = std::max(released_[n.node], n.incarnation);
    }
    return out;
  }
  std::vector<Entry> Names() const {
    std::vector<Entry> out;
    for (const auto& [name, e] : names_) out.push_back(e);
    return out;
  }
  const std::map<std::string, Entry>& names() const { return names_; }
  std::vector<RecordEntry> Records() const {
    std::vector<RecordEntry> out;
    for (const auto& [key, value] : records_) out.push_back({key, value});
    return out;
  }

 private:
  void Drop(const std::function<bool(const MemberId&)>& match, Outcome* out) {
    std::vector<Entry> dropped;
    for (const auto& [name, e] : names_) {
      if (match(e.holder)) dropped.push_back(e);
    }
    std::sort(dropped.begin(), dropped.end(), [](const Entry& a, const Entry& b) {
      return std::tie(a.holder, a.name) < std::tie(b.holder, b.name);
    });
    for (const Entry& e : dropped) {
      out->changes.push_back({ChangeKind::kUnregistered, e.name, e.holder, e.metadata});
      names_.erase(e.name);
    }
  }
  std::map<std::string, Entry> names_;
  std::map<std::string, uint64_t> released_;
  std::map<std::string, std::string> records_;
};

// Commands over small pools of names and members, so that they collide:
// taken names, non-holders, releases that drop several names, members of
// released incarnations. Uses rng() % n, not std::uniform_int_distribution,
// whose output differs between standard libraries.
class CommandGenerator {
 public:
  explicit CommandGenerator(uint64_t seed) : rng_(seed) {}

  Command Next(const Model& model) {
    if (rng_() % 5 == 0) {
      // Records, over keys that collide with each other and with names.
      std::string key = rng_() % 4 == 0 ? Name() : "rec/" + std::to_string(rng_() % 10);
      std::string value = "v" + std::to_string(rng_() % 3);
      switch (rng_() % 3) {
        case 0:
          return PutRecord{key, value};
        case 1:
          return CreateRecord{key, value};
        default:
          return DeleteRecord{key};
      }
    }
    uint64_t roll = rng_() % 100;
    if (roll < 45) {
      std::string metadata = rng_() % 3 == 0 ? "" : "m" + std::to_string(rng_() % 3);
      return Register{Name(), Member(), metadata};
    }
    if (roll < 75) {
      std::string name = Name();
      // Mostly the holder, so that unregistrations succeed often enough.
      auto it = model.names().find(name);
      if (it != model.names().end() && rng_() % 2 == 0) return Unregister{name, it->second.holder};
      return Unregister{name, Member()};
    }
    if (roll < 90) return ReleaseMember{Member()};
    if (roll < 94) {
      // The node was not dead after all: its current incarnation is readmitted.
      std::string node = "n" + std::to_string(1 + rng_() % 3);
      return ReadmitNode{node, incarnation_[node] - std::min<uint64_t>(1, incarnation_[node])};
    }
    std::string node = "n" + std::to_string(1 + rng_() % 3);
    uint64_t& current = incarnation_[node];
    // Mostly the current incarnation (the node restarted), sometimes an
    // older one (a late or repeated release, which must not lower the floor).
    uint64_t incarnation = current - std::min<uint64_t>(rng_() % 3, current);
    if (incarnation == current) ++current;
    return ReleaseNode{node, incarnation};
  }

 private:
  std::string Name() { return "svc/" + std::to_string(rng_() % 30); }
  // A member of the node's current incarnation, or of the one before.
  MemberId Member() {
    std::string node = "n" + std::to_string(1 + rng_() % 3);
    uint64_t current = incarnation_[node];
    return M(node, current - rng_() % 2, 1 + rng_() % 3);
  }

  std::mt19937_64 rng_;
  std::map<std::string, uint64_t> incarnation_{{"n1", 1}, {"n2", 1}, {"n3", 1}};
};

TEST(RegistryTest, RandomSequencesAreDeterministic) {
  for (uint64_t seed : {1, 2, 3}) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    constexpr int kCommands = 3000;
    CommandGenerator gen(seed);
    Model model;
    Registry direct;   // applies the commands as built
    Registry decoded;  // applies them as the log delivers them: encoded and decoded
    std::vector<std::string> log;
    std::string mid_snapshot;
    std::map<Verdict, int> verdicts;
    size_t changes = 0;
    for (int i = 0; i < kCommands; ++i) {
      if (i == kCommands / 2) mid_snapshot = direct.Snapshot();
      Command c = gen.Next(model);
      log.push_back(EncodeCommand(c));
      Result<Command> d = DecodeCommand(log.back());
      ASSERT_TRUE(d.ok()) << d.status().ToString();
      ASSERT_TRUE(*d == c);

      Outcome want = model.Apply(c);
      Outcome got = MustApply(direct, c);
      ASSERT_EQ(Describe(got), Describe(want)) << "command " << i;
      ASSERT_EQ(Describe(MustApply(decoded, *d)), Describe(got)) << "command " << i;
      ASSERT_EQ(direct.Names(), model.Names()) << "command " << i;
      ASSERT_EQ(direct.Records(), model.Records()) << "command " << i;
      ++verdicts[got.verdict];
      changes += got.changes.size();
    }
    // The sequence exercised every path.
    for (Verdict v : {Verdict::kOk, Verdict::kTaken, Verdict::kNotRegistered, Verdict::kNotHolder,
                      Verdict::kHolderGone, Verdict::kExists, Verdict::kNoRecord}) {
      EXPECT_GT(verdicts[v], 10) << VerdictName(v);
    }
    EXPECT_GT(changes, size_t{kCommands / 3});
    EXPECT_GT(direct.size(), 0u);
    EXPECT_GT(direct.record_count(), 0u);

    const std::string final_snapshot = direct.Snapshot();
    EXPECT_EQ(decoded.Snapshot(), final_snapshot);

    // A broker that joins mid-way: restored from the snapshot, then the rest
    // of the log.
    Registry late;
    ASSERT_TRUE(late.Restore(mid_snapshot).ok());
    for (size_t i = kCommands / 2; i < log.size(); ++i) {
      Result<Command> d = DecodeCommand(log[i]);
      ASSERT_TRUE(d.ok());
      MustApply(late, *d);
    }
    EXPECT_EQ(late.Snapshot(), final_snapshot);

    // The index agrees with the names.
    size_t indexed = 0;
    std::map<MemberId, Names> holders;
    for (const Entry& e : direct.Names()) holders[e.holder].push_back(e.name);
    for (const auto& [holder, names] : holders) {
      EXPECT_EQ(direct.NamesOf(holder), names);
      indexed += names.size();
    }
    EXPECT_EQ(indexed, direct.size());
  }
}

// ---- the codec -------------------------------------------------------------

std::vector<Command> SampleCommands() {
  return {
      Register{"svc", kA, "meta"},
      Register{"s", M("n", 0, 0), ""},
      Register{std::string(kMaxNameBytes, 'x'), M(std::string(64, 'n'), UINT64_MAX, UINT64_MAX),
               std::string(kMaxMetadataBytes, '\0')},
      Register{"caf\xc3\xa9", kR, std::string("\xff\x00\xc1", 3)},
      Unregister{"svc", kA},
      Unregister{"a b/c", M("N_-9", 1, 2)},
      ReleaseMember{kR},
      ReleaseMember{M("n1", UINT64_MAX, 0)},
      ReleaseNode{"n1", 0},
      ReleaseNode{"n1", UINT64_MAX},
      ReadmitNode{"n1", 0},
      ReadmitNode{"N_-9", UINT64_MAX},
      PutRecord{"store/o/sub/$all", "{\"pool\":2}"},
      PutRecord{"k", ""},
      PutRecord{std::string(kMaxNameBytes, 'k'), std::string(kMaxValueBytes, '\xff')},
      CreateRecord{"caf\xc3\xa9", std::string("\xff\x00\xc1", 3)},
      CreateRecord{"k", ""},
      DeleteRecord{"store/o/sub/$all"},
  };
}

TEST(RegistryCodecTest, RoundTrip) {
  for (const Command& c : SampleCommands()) {
    std::string bytes = EncodeCommand(c);
    EXPECT_FALSE(bytes.empty());
    Result<Command> d = DecodeCommand(bytes);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    EXPECT_TRUE(*d == c) << c.index();
    EXPECT_EQ(EncodeCommand(*d), bytes);
  }
}

TEST(RegistryCodecTest, EveryTruncationIsRefused) {
  for (const Command& c : SampleCommands()) {
    std::string bytes = EncodeCommand(c);
    for (size_t n = 0; n < bytes.size(); ++n) {
      Result<Command> d = DecodeCommand(bytes.substr(0, n));
      ASSERT_FALSE(d.ok()) << "kind " << c.index() << ", " << n << " of " << bytes.size()
                           << " bytes";
      EXPECT_EQ(d.status().code(), Code::kBadMessage);
    }
  }
  EXPECT_EQ(DecodeCommand("").status().code(), Code::kBadMessage);
}

// What a decoder may answer for arbitrary bytes: BadMessage, or a command
// valid in every field, which encodes and decodes back to itself.
void ExpectRefusedOrValid(std::string_view bytes) {
  Result<Command> d = DecodeCommand(bytes);
  if (!d.ok()) {
    EXPECT_EQ(d.status().code(), Code::kBadMessage) << d.status().ToString();
    return;
  }
  Registry r;
  EXPECT_TRUE(r.Apply(*d).ok()) << r.Apply(*d).status().ToString();
  Result<Command> again = DecodeCommand(EncodeCommand(*d));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(*again == *d);
}

TEST(RegistryCodecTest, RandomAndMutatedBytes) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(1 + rng() % 40, '\0');
    for (char& b : bytes) b = static_cast<char>(rng());
    // Half of them start like a command, to get past the first check.
    if (i % 2 == 0) bytes[0] = static_cast<char>(0x92 + rng() % 3);
    if (i % 4 == 0 && bytes.size() > 1) bytes[1] = static_cast<char>(1 + rng() % 4);
    ExpectRefusedOrValid(bytes);
  }
  for (const Command& c : SampleCommands()) {
    const std::string bytes = EncodeCommand(c);
    if (bytes.size() > 600) continue;  // the long ones add time, not paths
    for (size_t pos = 0; pos < bytes.size(); ++pos) {
      for (unsigned char v :
           {0x00, 0x01, 0x0a, 0x2e, 0x7f, 0x80, 0xa0, 0xc0, 0xc4, 0xcf, 0xd9, 0xdc, 0xdd, 0xff}) {
        std::string m = bytes;
        m[pos] = static_cast<char>(v);
        ExpectRefusedOrValid(m);
      }
      std::string m = bytes;
      m[pos] = static_cast<char>(m[pos] ^ 0x01);
      ExpectRefusedOrValid(m);
    }
  }
}

// Builders of msgpack values, each returning its bytes, to write bad input
// compactly: Arr(U(1), S("svc"), S("n1.a.1"), B("")) is a Register.
std::string Packed(const std::function<void(msgpack::packer<msgpack::sbuffer>&)>& fill) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  fill(pk);
  return std::string(buf.data(), buf.size());
}
std::string U(uint64_t v) {
  return Packed([&](auto& pk) { pk.pack_uint64(v); });
}
std::string I(int64_t v) {
  return Packed([&](auto& pk) { pk.pack_int64(v); });
}
std::string F(double v) {
  return Packed([&](auto& pk) { pk.pack_double(v); });
}
std::string S(std::string_view s) {
  return Packed([&](auto& pk) {
    pk.pack_str(static_cast<uint32_t>(s.size()));
    pk.pack_str_body(s.data(), static_cast<uint32_t>(s.size()));
  });
}
std::string B(std::string_view b) {
  return Packed([&](auto& pk) {
    pk.pack_bin(static_cast<uint32_t>(b.size()));
    pk.pack_bin_body(b.data(), static_cast<uint32_t>(b.size()));
  });
}
const std::string kNil = "\xc0";
const std::string kTrue = "\xc3";
template <typename... Parts>
std::string Arr(const Parts&... parts) {
  return Packed([](auto& pk) { pk.pack_array(sizeof...(Parts)); }) + (std::string() + ... + parts);
}

TEST(RegistryCodecTest, WrongShapesAndValues) {
  const std::string valid = EncodeCommand(Register{"svc", kA, "m"});
  const std::string kHolder = S("n1.a.1");
  const struct {
    const char* label;
    std::string bytes;
    std::string message;  // a part of the Status's message
  } kCases[] = {
      {"empty", "", "empty"},
      {"an integer", U(1), "not an array"},
      {"a string", S("register"), "not an array"},
      {"nil", kNil, "not an array"},
      {"an empty map", "\x80", "not an array"},
      {"a map", "\x81\x01\x01", "msgpack"},
      {"an empty array", Arr(), "missing field 'type'"},
      {"type 0", Arr(U(0)), "unknown type 0"},
      {"type 9", Arr(U(9)), "unknown type 9"},
      {"type 9 shaped like a put", Arr(U(9), S("k"), B("v")), "unknown type 9"},
      {"type 2^64-1 (not 1 when truncated)", Arr(U(UINT64_MAX)), "unknown type"},
      {"type 257 (1 as a byte)", Arr(U(257), S("svc"), kHolder, B("")), "unknown type 257"},
      {"negative type", Arr(I(-1)), "not an unsigned integer"},
      {"type as a string", Arr(S("1")), "not an unsigned integer"},
      {"type as a float", Arr(F(1.5)), "not an unsigned integer"},
      {"type as a boolean", Arr(kTrue), "not an unsigned integer"},
      {"register without fields", Arr(U(1)), "missing field 'name'"},
      {"register without metadata", Arr(U(1), S("svc"), kHolder), "missing field 'metadata'"},
      {"register with an extra field", Arr(U(1), S("svc"), kHolder, B(""), kNil),
       "unexpected trailing fields"},
      {"name as an integer", Arr(U(1), U(7), kHolder, B("")), "'name' is not a string"},
      {"name as binary", Arr(U(1), B("svc"), kHolder, B("")), "'name' is not a string"},
      {"empty name", Arr(U(1), S(""), kHolder, B("")), "name is empty"},
      {"name over 255 bytes", Arr(U(1), S(std::string(256, 'x')), kHolder, B("")),
       "longer than 255"},
      {"name over the unpacker's limit", Arr(U(1), S(std::string(70000, 'x')), kHolder, B("")),
       "msgpack"},
      {"control character in name", Arr(U(1), S("a\tb"), kHolder, B("")), "control character"},
      {"holder without session", Arr(U(1), S("svc"), S("n1.a"), B("")), "malformed member id"},
      {"holder with four parts", Arr(U(1), S("svc"), S("n1.a.1.2"), B("")), "malformed member id"},
      {"holder with a bad incarnation", Arr(U(1), S("svc"), S("n1.zz.1"), B("")),
       "malformed member id"},
      {"holder with a negative session", Arr(U(1), S("svc"), S("n1.a.-1"), B("")),
       "malformed member id"},
      {"holder with an overflowing session",
       Arr(U(1), S("svc"), S("n1.a.18446744073709551616"), B("")), "malformed member id"},
      {"holder with a bad node", Arr(U(1), S("svc"), S("n 1.a.1"), B("")), "malformed member id"},
      {"empty holder", Arr(U(1), S("svc"), S(""), B("")), "malformed member id"},
      {"overlong holder", Arr(U(1), S("svc"), S(std::string(200, 'n') + ".a.1"), B("")),
       "longer than"},
      {"holder as an array", Arr(U(1), S("svc"), Arr(S("n1"), U(10), U(1)), B("")),
       "'holder' is not a string"},
      {"metadata as a string", Arr(U(1), S("svc"), kHolder, S("m")), "'metadata' is not binary"},
      {"metadata as nil", Arr(U(1), S("svc"), kHolder, kNil), "'metadata' is not binary"},
      {"metadata over the limit", Arr(U(1), S("svc"), kHolder, B(std::string(4097, 'm'))),
       "'metadata' is longer than 4096 bytes"},
      {"unregister without holder", Arr(U(2), S("svc")), "missing field 'holder'"},
      {"unregister with metadata", Arr(U(2), S("svc"), kHolder, B("")),
       "unexpected trailing fields"},
      {"release of a bad member", Arr(U(3), S(".a.1")), "malformed member id"},
      {"release of a member as an integer", Arr(U(3), U(1)), "not a string"},
      {"release of a node with a dot", Arr(U(4), S("n1.a"), U(1)), "may only hold"},
      {"release of a node too long", Arr(U(4), S(std::string(65, 'n')), U(1)), "longer than 64"},
      {"release with a negative incarnation", Arr(U(4), S("n1"), I(-1)), "not an unsigned integer"},
      {"release without incarnation", Arr(U(4), S("n1")), "missing field 'incarnation'"},
      {"put without value", Arr(U(6), S("k")), "missing field 'value'"},
      {"put with an extra field", Arr(U(6), S("k"), B("v"), kNil), "unexpected trailing fields"},
      {"put with an empty key", Arr(U(6), S(""), B("v")), "record key is empty"},
      {"put with a key over 255 bytes", Arr(U(6), S(std::string(256, 'k')), B("v")),
       "longer than 255"},
      {"put with a control character in the key", Arr(U(6), S("a\x01"), B("v")),
       "control character"},
      {"put with the key as binary", Arr(U(6), B("k"), B("v")), "'key' is not a string"},
      {"put with the value as a string", Arr(U(6), S("k"), S("v")), "'value' is not binary"},
      {"put with a value over 64 KiB", Arr(U(6), S("k"), B(std::string(65537, 'v'))), "msgpack"},
      {"create without value", Arr(U(7), S("k")), "missing field 'value'"},
      {"create with the value as nil", Arr(U(7), S("k"), kNil), "'value' is not binary"},
      {"delete without key", Arr(U(8)), "missing field 'key'"},
      {"delete with a value", Arr(U(8), S("k"), B("")), "unexpected trailing fields"},
      {"delete with an empty key", Arr(U(8), S("")), "record key is empty"},
      {"an array claiming 4G elements", std::string("\xdd\xff\xff\xff\xff\x01", 6), "msgpack"},
      {"a string claiming 4 GiB", std::string("\x92\x01\xdb\xff\xff\xff\xff", 7), "msgpack"},
      {"deep nesting", std::string(100, '\x91') + '\x01', "msgpack"},
      {"an ext", Arr(std::string("\xd4\x01\x00", 3)), "msgpack"},
      {"trailing bytes", valid + '\x00', "trailing bytes"},
      {"two commands", valid + valid, "trailing bytes"},
  };
  for (const auto& c : kCases) {
    Result<Command> d = DecodeCommand(c.bytes);
    ASSERT_FALSE(d.ok()) << c.label;
    EXPECT_EQ(d.status().code(), Code::kBadMessage) << c.label;
    EXPECT_NE(d.status().message().find(c.message), std::string::npos)
        << c.label << ": " << d.status().message();
  }
}

// ---- bad snapshots -----------------------------------------------------------

TEST(RegistrySnapshotTest, BadSnapshotsChangeNothing) {
  Registry source;
  MustApply(source, Register{"a", kA, "m"});
  MustApply(source, Register{"b", kR, ""});
  MustApply(source, ReleaseNode{"n9", 3});
  MustApply(source, PutRecord{"rec", "v"});
  const std::string valid = source.Snapshot();

  Registry r;
  MustApply(r, Register{"mine", kB, "x"});
  MustApply(r, PutRecord{"my-record", "y"});
  MustApply(r, ReleaseNode{"n7", 1});
  const std::string before = r.Snapshot();
  auto expect_refused = [&](std::string_view bytes, const std::string& label,
                            const std::string& message = "") {
    Status st = r.Restore(bytes);
    EXPECT_EQ(st.code(), Code::kBadMessage) << label;
    EXPECT_NE(st.message().find(message), std::string::npos) << label << ": " << st.message();
    EXPECT_EQ(r.Snapshot(), before) << label;
    EXPECT_EQ(r.NamesOf(kB), (Names{"mine"})) << label;
  };

  for (size_t n = 0; n < valid.size(); ++n) {
    expect_refused(valid.substr(0, n), "truncated to " + std::to_string(n));
  }
  auto entry = [](std::string_view name, std::string_view holder) {
    return Arr(S(name), S(holder), B(""));
  };
  const struct {
    const char* label;
    std::string bytes;
    std::string message;
  } kCases[] = {
      {"a command", EncodeCommand(Register{"a", kA, ""}), "not an array"},
      {"format 2", Arr(U(2), Arr(), Arr()), "unknown format 2"},
      {"format as a string", Arr(S("1"), Arr(), Arr()), "not an unsigned integer"},
      {"without released nodes", Arr(U(1), Arr()), "missing field 'released'"},
      {"an extra field", Arr(U(1), Arr(), Arr(), Arr(Arr(S("k"), B("v"))), kNil),
       "unexpected trailing fields"},
      {"records as nil", Arr(U(1), Arr(), Arr(), kNil), "records is not an array"},
      {"an empty records list", Arr(U(1), Arr(), Arr(), Arr()), "is empty (written as absent)"},
      {"records out of order", Arr(U(1), Arr(), Arr(), Arr(Arr(S("b"), B("")), Arr(S("a"), B("")))),
       "keys are not strictly ascending at 'a'"},
      {"a record twice", Arr(U(1), Arr(), Arr(), Arr(Arr(S("a"), B("1")), Arr(S("a"), B("2")))),
       "not strictly ascending"},
      {"a record with an empty key", Arr(U(1), Arr(), Arr(), Arr(Arr(S(""), B("")))),
       "record key is empty"},
      {"a record with a control character", Arr(U(1), Arr(), Arr(), Arr(Arr(S("a\n"), B("")))),
       "control character"},
      {"a record without value", Arr(U(1), Arr(), Arr(), Arr(Arr(S("a")))),
       "missing field 'value'"},
      {"a record with an extra field", Arr(U(1), Arr(), Arr(), Arr(Arr(S("a"), B(""), kNil))),
       "unexpected trailing fields"},
      {"a record value as a string", Arr(U(1), Arr(), Arr(), Arr(Arr(S("a"), S("v")))),
       "'value' is not binary"},
      {"a record as a string", Arr(U(1), Arr(), Arr(), Arr(S("a"))), "not an array"},
      {"names out of order", Arr(U(1), Arr(entry("b", "n1.a.1"), entry("a", "n1.a.1")), Arr()),
       "not strictly ascending"},
      {"a name twice", Arr(U(1), Arr(entry("a", "n1.a.1"), entry("a", "n2.a.1")), Arr()),
       "not strictly ascending"},
      {"an empty name", Arr(U(1), Arr(entry("", "n1.a.1")), Arr()), "name is empty"},
      {"a bad holder", Arr(U(1), Arr(entry("a", "n1.a")), Arr()), "malformed member id"},
      {"an entry with an extra field", Arr(U(1), Arr(Arr(S("a"), S("n1.a.1"), B(""), kNil)), Arr()),
       "unexpected trailing fields"},
      {"an entry without metadata", Arr(U(1), Arr(Arr(S("a"), S("n1.a.1"))), Arr()),
       "missing field 'metadata'"},
      {"oversized metadata",
       Arr(U(1), Arr(Arr(S("a"), S("n1.a.1"), B(std::string(4097, 'm')))), Arr()),
       "longer than 4096"},
      {"released nodes out of order", Arr(U(1), Arr(), Arr(Arr(S("n2"), U(1)), Arr(S("n1"), U(1)))),
       "not strictly ascending"},
      {"a node released twice", Arr(U(1), Arr(), Arr(Arr(S("n1"), U(1)), Arr(S("n1"), U(2)))),
       "not strictly ascending"},
      {"a bad released node", Arr(U(1), Arr(), Arr(Arr(S("n.1"), U(1)))), "may only hold"},
      {"a name held by a released member",
       Arr(U(1), Arr(entry("a", "n1.a.1")), Arr(Arr(S("n1"), U(0xa)))), "released member n1.a.1"},
      {"too deep", Arr(U(1), Arr(Arr(Arr(U(1)))), Arr()), "msgpack"},
      {"trailing bytes", valid + '\xc0', "trailing bytes"},
  };
  for (const auto& c : kCases) expect_refused(c.bytes, c.label, c.message);

  // Random and mutated bytes: refused, or (rarely) a valid snapshot.
  std::mt19937_64 rng(7);
  for (int i = 0; i < 5000; ++i) {
    std::string bytes(1 + rng() % 48, '\0');
    for (char& b : bytes) b = static_cast<char>(rng());
    if (i % 2 == 0) bytes[0] = '\x93';
    Registry scratch;
    Status st = scratch.Restore(bytes);
    EXPECT_TRUE(st.ok() || st.code() == Code::kBadMessage) << st.ToString();
  }
  for (size_t pos = 0; pos < valid.size(); ++pos) {
    for (unsigned char v : {0x00, 0x7f, 0x80, 0xc0, 0xdd, 0xff}) {
      std::string m = valid;
      m[pos] = static_cast<char>(v);
      Registry scratch;
      Status st = scratch.Restore(m);
      if (!st.ok()) {
        EXPECT_EQ(st.code(), Code::kBadMessage);
        EXPECT_EQ(scratch.size(), 0u);
      }
    }
  }
  ASSERT_TRUE(r.Restore(valid).ok());  // and r still restores a good one
  EXPECT_EQ(r.Snapshot(), valid);
}

}  // namespace
}  // namespace meshbus::registry
