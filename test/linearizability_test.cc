// Tests of the registry linearizability checker (test/linearizability.h):
// hand-written histories that are and are not linearizable, malformed input,
// the search budget, the Recorder under threads, and randomized executions of
// the model, whose results are then mutated one at a time.

#include "test/linearizability.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace meshbus::testing::lin {
namespace {

using K = Verdict::Kind;
using O = Outcome;

std::string M(int i) {
  return "m" + std::to_string(i);
}

// Shorthands for table rows; the client is the op's id.
Op Reg(uint64_t id, std::string name, std::string member, int64_t invoke, int64_t complete,
       Outcome outcome, std::string holder = {}) {
  return Op{id,
            static_cast<int>(id),
            OpKind::kRegister,
            std::move(name),
            std::move(member),
            invoke,
            complete,
            outcome,
            std::move(holder)};
}
Op Unreg(uint64_t id, std::string name, std::string member, int64_t invoke, int64_t complete,
         Outcome outcome) {
  return Op{id,
            static_cast<int>(id),
            OpKind::kUnregister,
            std::move(name),
            std::move(member),
            invoke,
            complete,
            outcome,
            {}};
}
Op Where(uint64_t id, std::string name, int64_t invoke, int64_t complete, Outcome outcome,
         std::string holder = {}) {
  return Op{id,      static_cast<int>(id), OpKind::kWhereis, std::move(name), {}, invoke, complete,
            outcome, std::move(holder)};
}
Op Release(uint64_t id, std::string member, int64_t invoke, int64_t complete) {
  return Op{
      id, static_cast<int>(id), OpKind::kRelease, {}, std::move(member), invoke, complete, O::kOk,
      {}};
}

std::vector<uint64_t> Ids(const std::vector<Op>& ops) {
  std::vector<uint64_t> ids;
  for (const Op& op : ops) ids.push_back(op.id);
  return ids;
}

struct Case {
  const char* label;
  std::vector<Op> ops;
  Verdict::Kind kind;
  // Violations: the smallest failing window and its last answers (empty: not checked).
  std::vector<uint64_t> window = {};
  std::vector<uint64_t> unexplained = {};
};

TEST(LinearizabilityTest, Histories) {
  const Case kCases[] = {
      // ---- linearizable ----
      {"sequential, every answer",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Where(2, "a", 20, 30, O::kHolder, "m1"),
        Reg(3, "a", "m2", 40, 50, O::kTaken, "m1"), Reg(4, "a", "m1", 60, 70, O::kOk),
        Unreg(5, "a", "m2", 80, 90, O::kNotHolder), Unreg(6, "a", "m1", 100, 110, O::kOk),
        Where(7, "a", 120, 130, O::kNone), Unreg(8, "a", "m1", 140, 150, O::kNotRegistered),
        Reg(9, "a", "m2", 160, 170, O::kOk)},
       K::kLinearizable},
      {"concurrent registers, the first invoked wins",
       {Reg(1, "a", "m1", 0, 100, O::kOk), Reg(2, "a", "m2", 10, 90, O::kTaken, "m1"),
        Where(3, "a", 110, 120, O::kHolder, "m1")},
       K::kLinearizable},
      {"concurrent registers, the last invoked wins",
       {Reg(1, "a", "m1", 0, 100, O::kTaken, "m2"), Reg(2, "a", "m2", 10, 90, O::kOk),
        Where(3, "a", 50, 60, O::kHolder, "m2")},
       K::kLinearizable},
      {"a timed-out register took effect, as a later read shows",
       {Reg(1, "a", "m1", 0, kNever, O::kUnknown), Where(2, "a", 50, 60, O::kHolder, "m1"),
        Reg(3, "a", "m2", 70, 80, O::kTaken, "m1")},
       K::kLinearizable},
      {"a timed-out register took effect after a read saw the name free",
       {Reg(1, "a", "m1", 0, kNever, O::kUnknown), Where(2, "a", 10, 20, O::kNone),
        Where(3, "a", 30, 40, O::kHolder, "m1")},
       K::kLinearizable},
      {"a timed-out register did not take effect",
       {Reg(1, "a", "m1", 0, kNever, O::kUnknown), Where(2, "a", 50, 60, O::kNone),
        Reg(3, "a", "m2", 70, 80, O::kOk), Where(4, "a", 90, 100, O::kHolder, "m2")},
       K::kLinearizable},
      {"a register without a leader did not take effect",
       {Reg(1, "a", "m1", 0, 10, O::kFailed), Where(2, "a", 20, 30, O::kNone),
        Where(3, "a", 40, 50, O::kUnknown), Where(4, "a", 60, 70, O::kFailed)},
       K::kLinearizable},
      {"release, then another member registers",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Release(2, "m1", 20, 30),
        Reg(3, "a", "m2", 40, 50, O::kOk), Where(4, "a", 60, 70, O::kHolder, "m2")},
       K::kLinearizable},
      {"a register concurrent with the holder's release sees either side",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Release(2, "m1", 20, 100),
        Reg(3, "a", "m2", 30, 40, O::kTaken, "m1"), Reg(4, "a", "m2", 50, 60, O::kOk)},
       K::kLinearizable},
      {"reads during an unregister see either side",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Unreg(2, "a", "m1", 20, 100, O::kOk),
        Where(3, "a", 30, 40, O::kHolder, "m1"), Where(4, "a", 50, 60, O::kNone)},
       K::kLinearizable},
      {"names are independent; a release frees only its member's names",
       {Reg(1, "a", "m1", 0, 50, O::kOk), Reg(2, "b", "m1", 0, 50, O::kOk),
        Reg(3, "c", "m2", 0, 50, O::kOk), Release(4, "m1", 60, 70), Where(5, "a", 80, 90, O::kNone),
        Where(6, "b", 80, 90, O::kNone), Where(7, "c", 80, 90, O::kHolder, "m2")},
       K::kLinearizable},
      {"an answer at the instant another op begins: concurrent",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Where(2, "a", 10, 20, O::kNone)},
       K::kLinearizable},

      // ---- not linearizable ----
      {"two concurrent registers both ok, by different members",
       {Reg(1, "a", "m1", 0, 100, O::kOk), Reg(2, "a", "m2", 10, 90, O::kOk)},
       K::kNotLinearizable,
       {1, 2},
       {1}},
      {"a stale holder read after an unregister completed",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Unreg(2, "a", "m1", 20, 30, O::kOk),
        Where(3, "a", 40, 50, O::kHolder, "m1")},
       K::kNotLinearizable,
       {2, 3},
       {3}},
      {"a register ok, then a read of none",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Where(2, "a", 20, 30, O::kNone)},
       K::kNotLinearizable,
       {1, 2},
       {2}},
      {"taken by a member that never registered",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Unreg(2, "a", "m1", 20, 30, O::kOk),
        Reg(3, "a", "m2", 40, 50, O::kTaken, "m9")},
       K::kNotLinearizable,
       {3},
       {3}},
      {"a release that did not free the name",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Release(2, "m1", 20, 30),
        Where(3, "a", 40, 50, O::kHolder, "m1")},
       K::kNotLinearizable,
       {2, 3},
       {3}},
      {"a timed-out register takes effect at most once",
       {Reg(1, "a", "m1", 0, kNever, O::kUnknown), Where(2, "a", 10, 20, O::kHolder, "m1"),
        Unreg(3, "a", "m1", 30, 40, O::kOk), Where(4, "a", 50, 60, O::kHolder, "m1")},
       K::kNotLinearizable,
       {1, 2, 3, 4},  // from any holder, the register could explain the last read
       {4}},
      {"a failed register never takes effect",
       {Reg(1, "a", "m1", 0, 10, O::kFailed), Where(2, "a", 20, 30, O::kHolder, "m1")},
       K::kNotLinearizable,
       {2},
       {2}},
      {"the violation is found on one name among good ones",
       {Reg(1, "a", "m1", 0, 10, O::kOk), Reg(2, "b", "m2", 0, 10, O::kOk),
        Where(3, "a", 20, 30, O::kHolder, "m1"), Where(4, "b", 20, 30, O::kHolder, "m1")},
       K::kNotLinearizable,
       {4},  // m1 never registers b
       {4}},
  };
  for (const Case& c : kCases) {
    Result<Verdict> v = Check(History{c.ops});
    ASSERT_TRUE(v.ok()) << c.label << ": " << v.status().ToString();
    EXPECT_EQ(v->kind, c.kind) << c.label << "\n" << v->explanation;
    if (c.kind == K::kLinearizable) {
      EXPECT_TRUE(v->linearizable()) << c.label;
      EXPECT_EQ(v->explanation, "") << c.label;
      continue;
    }
    EXPECT_NE(v->explanation.find("name \"" + v->name + "\""), std::string::npos) << c.label;
    if (!c.window.empty()) {
      std::vector<uint64_t> window = Ids(v->window);
      std::sort(window.begin(), window.end());
      EXPECT_EQ(window, c.window) << c.label << "\n" << v->explanation;
    }
    if (!c.unexplained.empty()) {
      EXPECT_EQ(v->unexplained, c.unexplained) << c.label << "\n" << v->explanation;
    }
  }
}

TEST(LinearizabilityTest, ExplanationShowsTimesAndAnswers) {
  History h{{Reg(1, "svc", "m1", 1000, 1010, O::kOk),
             Reg(7, "svc", "m2", 1005, kNever, O::kUnknown),
             Where(2, "svc", 1020, 1030, O::kNone)}};
  Result<Verdict> v = Check(h);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->kind, K::kNotLinearizable);
  EXPECT_EQ(v->name, "svc");
  EXPECT_NE(v->explanation.find("#1 c1 register(svc, m1) [+0, +10] -> ok"), std::string::npos)
      << v->explanation;
  EXPECT_NE(v->explanation.find("* #2 c2 whereis(svc) [+20, +30] -> none"), std::string::npos)
      << v->explanation;
  // The unknown register cannot free the name, but it is part of the window.
  EXPECT_NE(v->explanation.find("~ #7 c7 register(svc, m2) [+5, inf) -> unknown"),
            std::string::npos)
      << v->explanation;

  CheckOptions whole;
  whole.minimize = false;
  Result<Verdict> w = Check(h, whole);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->kind, K::kNotLinearizable);
  EXPECT_EQ(w->window.size(), 3u);
}

TEST(LinearizabilityTest, RejectsMalformedHistories) {
  struct Bad {
    const char* label;
    Op op;
  };
  const Bad kCases[] = {
      {"register answered none", Reg(1, "a", "m1", 0, 10, O::kNone)},
      {"unregister answered taken", Unreg(1, "a", "m1", 0, 10, O::kTaken)},
      {"whereis answered ok", Where(1, "a", 0, 10, O::kOk)},
      {"release answered not_holder",
       Op{1, 1, OpKind::kRelease, {}, "m1", 0, 10, O::kNotHolder, {}}},
      {"empty name", Reg(1, "", "m1", 0, 10, O::kOk)},
      {"empty member", Reg(1, "a", "", 0, 10, O::kOk)},
      {"taken without a holder", Reg(1, "a", "m1", 0, 10, O::kTaken)},
      {"known answer without a completion", Reg(1, "a", "m1", 0, kNever, O::kOk)},
      {"completion before invocation", Where(1, "a", 10, 5, O::kNone)},
  };
  for (const Bad& c : kCases) {
    Result<Verdict> v = Check(History{{Reg(0, "a", "m0", 0, 1, O::kOk), c.op}});
    EXPECT_FALSE(v.ok()) << c.label;
    EXPECT_EQ(v.status().code(), Code::kInvalidArgument) << c.label;
  }
}

// Overlapping timed-out registers and releases of five members, then reads
// that need one of them after another: linearizable, but only through the
// timed-out ops.
History Crowded(int n) {
  History h;
  for (int i = 0; i < n; ++i) {
    const std::string m = M(i % 5);
    h.ops.push_back(Reg(3 * i, "a", m, i, kNever, O::kUnknown));
    h.ops.push_back(Release(3 * i + 1, m, i, kNever));
    h.ops.back().outcome = O::kUnknown;
    h.ops.push_back(Where(3 * i + 2, "a", n + i, n + i + 1, O::kHolder, M(i % 3)));
  }
  return h;
}

// k members each register and unregister, all at once, and a read then sees
// a holder: not linearizable, and every interleaving has to be ruled out.
History Concurrent(int k) {
  History h;
  for (int i = 0; i < k; ++i) {
    h.ops.push_back(Reg(2 * i, "a", M(i), 0, 1000, O::kOk));
    h.ops.push_back(Unreg(2 * i + 1, "a", M(i), 0, 1000, O::kOk));
  }
  h.ops.push_back(Where(999, "a", 2000, 2010, O::kHolder, M(0)));
  return h;
}

TEST(LinearizabilityTest, HardHistories) {
  Result<Verdict> v = Check(Crowded(200));
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->linearizable()) << v->explanation;
  std::printf("[ info     ] 200 timed-out registers and releases, 200 reads: %llu steps\n",
              static_cast<unsigned long long>(v->steps));

  v = Check(Concurrent(10));
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->kind, K::kNotLinearizable);
  EXPECT_EQ(v->window.size(), 21u);  // all of it: no later window fails
  EXPECT_EQ(v->unexplained, std::vector<uint64_t>{999});
  std::printf("[ info     ] 20 concurrent writes, then a read: %llu steps\n",
              static_cast<unsigned long long>(v->steps));
}

TEST(LinearizabilityTest, BudgetGivesTooLarge) {
  CheckOptions small;
  small.max_steps = 1000;
  Result<Verdict> v = Check(Concurrent(10), small);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->kind, K::kTooLarge);
  EXPECT_EQ(v->name, "a");
  EXPECT_NE(v->explanation.find("too large"), std::string::npos) << v->explanation;

  // A definite violation on another name wins over "too large".
  History h = Concurrent(10);
  h.ops.push_back(Reg(1000, "b", "x", 0, 10, O::kOk));
  h.ops.push_back(Where(1001, "b", 20, 30, O::kNone));
  v = Check(h, small);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->kind, K::kNotLinearizable);
  EXPECT_EQ(v->name, "b");
}

TEST(LinearizabilityTest, UnknownEffectWithin) {
  struct Row {
    const char* label;
    std::vector<Op> ops;
    int64_t within;
    Verdict::Kind kind;
  };
  // A register times out at 0; reads at 1500 and at 5000.
  auto late = [](Outcome last, std::string holder) {
    return std::vector<Op>{Reg(1, "a", "m1", 0, kNever, O::kUnknown),
                           Where(2, "a", 1500, 1510, O::kNone),
                           Where(3, "a", 5000, 5010, last, std::move(holder))};
  };
  const Row kRows[] = {
      {"effect at any time", late(O::kHolder, "m1"), kNever, K::kLinearizable},
      {"effect within 1000: too late", late(O::kHolder, "m1"), 1000, K::kNotLinearizable},
      {"effect within 1000: never", late(O::kNone, ""), 1000, K::kLinearizable},
      {"effect within 5000: at the last instant", late(O::kHolder, "m1"), 5000, K::kLinearizable},
      {"effect within 100, between the reads",
       {Reg(1, "a", "m1", 0, kNever, O::kUnknown), Where(2, "a", 10, 20, O::kNone),
        Where(3, "a", 90, 95, O::kHolder, "m1"), Where(4, "a", 5000, 5010, O::kHolder, "m1")},
       100,
       K::kLinearizable},
      {"a read does not jump over the deadline of a register it needs",
       {Reg(1, "a", "m1", 0, kNever, O::kUnknown), Unreg(2, "a", "m1", 50, 300, O::kOk),
        Where(3, "a", 150, 160, O::kNone)},
       100,
       K::kLinearizable},
      {"a deadline does not let a read jump over it",
       {Reg(1, "a", "m1", 0, kNever, O::kUnknown), Where(2, "a", 10, 20, O::kNone),
        Where(3, "a", 200, 210, O::kNone), Where(4, "a", 300, 310, O::kHolder, "m1")},
       100,
       K::kNotLinearizable},
  };
  for (const Row& r : kRows) {
    CheckOptions options;
    options.unknown_effect_within = r.within;
    Result<Verdict> v = Check(History{r.ops}, options);
    ASSERT_TRUE(v.ok()) << r.label;
    EXPECT_EQ(v->kind, r.kind) << r.label << "\n" << v->explanation;
  }
}

TEST(LinearizabilityTest, RecorderCompletesOnce) {
  int64_t now = 100;
  Recorder r([&] { return now++; });
  uint64_t a = r.Invoke(1, OpKind::kRegister, "a", "m1");
  uint64_t b = r.Invoke(2, OpKind::kWhereis, "a", "");
  uint64_t c = r.Invoke(3, OpKind::kRegister, "a", "m2");
  EXPECT_TRUE(r.Complete(a, O::kOk).ok());
  EXPECT_TRUE(r.Complete(b, O::kHolder, "m1").ok());
  EXPECT_EQ(r.Complete(b, O::kNone).code(), Code::kInvalidArgument);
  EXPECT_EQ(r.Complete(99, O::kNone).code(), Code::kInvalidArgument);
  History h = r.Snapshot();
  ASSERT_EQ(h.ops.size(), 3u);
  EXPECT_EQ(ToString(h.ops[a], 100), "#0 c1 register(a, m1) [+0, +3] -> ok");
  EXPECT_EQ(ToString(h.ops[b], 100), "#1 c2 whereis(a) [+1, +4] -> holder(m1)");
  EXPECT_EQ(h.ops[c].outcome, O::kUnknown);  // never completed
  EXPECT_EQ(h.ops[c].complete, kNever);
  Result<Verdict> v = Check(h);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->linearizable()) << v->explanation;
}

// An in-memory registry behind a mutex: linearizable by construction.
class LockedRegistry {
 public:
  Outcome Register(const std::string& name, const std::string& member, std::string* holder) {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, added] = names_.emplace(name, member);
    if (added || it->second == member) return O::kOk;
    *holder = it->second;
    return O::kTaken;
  }
  Outcome Unregister(const std::string& name, const std::string& member) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = names_.find(name);
    if (it == names_.end()) return O::kNotRegistered;
    if (it->second != member) return O::kNotHolder;
    names_.erase(it);
    return O::kOk;
  }
  Outcome Whereis(const std::string& name, std::string* holder) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = names_.find(name);
    if (it == names_.end()) return O::kNone;
    *holder = it->second;
    return O::kHolder;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> names_;
};

TEST(LinearizabilityTest, RecorderUnderThreads) {
  LockedRegistry registry;
  Recorder recorder;
  std::vector<std::thread> threads;
  for (int c = 0; c < 4; ++c) {
    threads.emplace_back([&, c] {
      std::mt19937 rng(c);
      const std::string member = "m" + std::to_string(c);
      for (int i = 0; i < 300; ++i) {
        const std::string name = "n" + std::to_string(rng() % 2);
        std::string holder;
        switch (rng() % 3) {
          case 0: {
            uint64_t id = recorder.Invoke(c, OpKind::kRegister, name, member);
            Outcome o = registry.Register(name, member, &holder);
            ASSERT_TRUE(recorder.Complete(id, o, holder).ok());
            break;
          }
          case 1: {
            uint64_t id = recorder.Invoke(c, OpKind::kUnregister, name, member);
            ASSERT_TRUE(recorder.Complete(id, registry.Unregister(name, member)).ok());
            break;
          }
          default: {
            uint64_t id = recorder.Invoke(c, OpKind::kWhereis, name, "");
            Outcome o = registry.Whereis(name, &holder);
            ASSERT_TRUE(recorder.Complete(id, o, holder).ok());
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  History h = recorder.Snapshot();
  ASSERT_EQ(h.ops.size(), 1200u);
  Result<Verdict> v = Check(h);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->linearizable()) << v->explanation;
}

// ---- randomized ---------------------------------------------------------------

constexpr int kMembers = 4;

// A random sequential execution of the model, op i taking effect at 100*i,
// its interval then stretched by up to `skew` on each side. Some ops time out
// (taking effect or not) and some fail; none is a violation.
History RandomExecution(std::mt19937_64& rng, int ops, int names, int64_t skew) {
  std::map<std::string, int> holder;  // absent: free
  auto pick = [&](int n) { return static_cast<int>(rng() % n); };
  History h;
  for (int i = 0; i < ops; ++i) {
    Op op;
    op.id = i;
    op.client = pick(6);
    op.name = "n" + std::to_string(pick(names));
    const int m = pick(kMembers);
    const int kind = pick(20);
    op.kind = kind < 8    ? OpKind::kRegister
              : kind < 12 ? OpKind::kUnregister
              : kind < 19 ? OpKind::kWhereis
                          : OpKind::kRelease;
    if (op.kind != OpKind::kWhereis) op.member = M(m);
    if (op.kind == OpKind::kRelease) op.name.clear();
    const int fate = pick(20);  // 0: timed out, applied; 1: timed out, not; 2: failed
    const bool applied = fate != 1 && fate != 2;
    auto it = holder.find(op.name);
    const int h_now = it == holder.end() ? -1 : it->second;
    switch (op.kind) {
      case OpKind::kRegister:
        if (h_now == -1 || h_now == m) {
          op.outcome = O::kOk;
          if (applied) holder[op.name] = m;
        } else {
          op.outcome = O::kTaken;
          op.holder = M(h_now);
        }
        break;
      case OpKind::kUnregister:
        if (h_now == m) {
          op.outcome = O::kOk;
          if (applied) holder.erase(op.name);
        } else {
          op.outcome = h_now == -1 ? O::kNotRegistered : O::kNotHolder;
        }
        break;
      case OpKind::kWhereis:
        op.outcome = h_now == -1 ? O::kNone : O::kHolder;
        if (h_now != -1) op.holder = M(h_now);
        break;
      case OpKind::kRelease:
        op.outcome = O::kOk;
        if (applied) std::erase_if(holder, [&](const auto& e) { return e.second == m; });
        break;
    }
    const int64_t at = 100 * int64_t{i};
    op.invoke = at - static_cast<int64_t>(rng() % (skew + 1));
    op.complete = at + static_cast<int64_t>(rng() % (skew + 1));
    if (fate <= 1) {
      op.outcome = O::kUnknown;
      op.holder.clear();
      op.complete = kNever;
    } else if (fate == 2) {
      op.outcome = O::kFailed;
      op.holder.clear();
    }
    h.ops.push_back(std::move(op));
  }
  return h;
}

// Changes one known answer of a register, unregister or whereis to another
// answer its kind can give; false if the history has none.
bool Mutate(std::mt19937_64& rng, History* h) {
  std::vector<size_t> known;
  for (size_t i = 0; i < h->ops.size(); ++i) {
    const Op& op = h->ops[i];
    if (op.kind != OpKind::kRelease && op.outcome != O::kUnknown && op.outcome != O::kFailed) {
      known.push_back(i);
    }
  }
  if (known.empty()) return false;
  Op& op = h->ops[known[rng() % known.size()]];
  const Op before = op;
  while (op.outcome == before.outcome && op.holder == before.holder) {
    const std::string other = M(static_cast<int>(rng() % kMembers));
    switch (op.kind) {
      case OpKind::kRegister:
        if (rng() % 2 == 0) {
          op.outcome = O::kOk;
          op.holder.clear();
        } else if (other != op.member) {
          op.outcome = O::kTaken;
          op.holder = other;
        }
        break;
      case OpKind::kUnregister: {
        constexpr Outcome kAnswers[] = {O::kOk, O::kNotRegistered, O::kNotHolder};
        op.outcome = kAnswers[rng() % 3];
        break;
      }
      default:
        if (rng() % (kMembers + 1) == 0) {
          op.outcome = O::kNone;
          op.holder.clear();
        } else {
          op.outcome = O::kHolder;
          op.holder = other;
        }
    }
  }
  return true;
}

struct Sweep {
  const char* label;
  int histories;
  int ops;
  int names;
  int64_t skew;  // 100 is one op's slot
};

constexpr Sweep kSweeps[] = {
    {"sequential", 200, 40, 2, 0},
    {"neighbours overlap", 200, 40, 2, 150},
    {"wide overlaps, one name", 200, 40, 1, 600},
    {"wide overlaps, three names", 100, 80, 3, 1000},
};

TEST(LinearizabilityTest, RandomExecutionsAreLinearizable) {
  for (const Sweep& s : kSweeps) {
    std::mt19937_64 rng(42);
    uint64_t steps = 0;
    for (int i = 0; i < s.histories; ++i) {
      History h = RandomExecution(rng, s.ops, s.names, s.skew);
      Result<Verdict> v = Check(h);
      ASSERT_TRUE(v.ok()) << s.label << ": " << v.status().ToString();
      ASSERT_TRUE(v->linearizable()) << s.label << " #" << i << "\n" << v->explanation;
      steps += v->steps;
    }
    std::printf("[ info     ] %s: %d histories of %d ops, %.1f search steps each\n", s.label,
                s.histories, s.ops, static_cast<double>(steps) / s.histories);
  }
}

// A timed-out op of RandomExecution takes effect within `skew` of its
// invocation, if at all: a bound a test may pass as unknown_effect_within.
TEST(LinearizabilityTest, MutationsAreCaught) {
  for (const Sweep& s : kSweeps) {
    std::mt19937_64 rng(7);
    CheckOptions within;
    within.unknown_effect_within = s.skew;
    int mutated = 0, caught = 0, caught_within = 0;
    for (int i = 0; i < s.histories; ++i) {
      History h = RandomExecution(rng, s.ops, s.names, s.skew);
      Result<Verdict> v = Check(h, within);
      ASSERT_TRUE(v.ok() && v->linearizable()) << s.label << " #" << i << "\n" << v->explanation;
      if (!Mutate(rng, &h)) continue;
      ++mutated;
      v = Check(h);
      ASSERT_TRUE(v.ok()) << s.label << ": " << v.status().ToString();
      ASSERT_NE(v->kind, K::kTooLarge) << s.label;
      if (v->kind == K::kNotLinearizable) {
        ++caught;
        EXPECT_FALSE(v->unexplained.empty()) << v->explanation;
        EXPECT_LE(v->window.size(), h.ops.size());
      }
      v = Check(h, within);
      ASSERT_TRUE(v.ok()) << s.label << ": " << v.status().ToString();
      ASSERT_NE(v->kind, K::kTooLarge) << s.label;
      if (v->kind == K::kNotLinearizable) ++caught_within;
    }
    const double rate = static_cast<double>(caught) / mutated;
    std::printf(
        "[ info     ] %s: caught %d of %d mutations (%.0f%%); %d with effects within %lld\n",
        s.label, caught, mutated, 100 * rate, caught_within, static_cast<long long>(s.skew));
    // Some mutations stay consistent: an answer that a concurrent op, or a
    // timed-out one, can explain. Fewer as the overlaps get narrower.
    EXPECT_GE(rate, s.skew == 0 ? 0.9 : 0.6) << s.label;
    EXPECT_GE(caught_within, caught) << s.label;
  }
}

// The definition, by brute force: some subset of the ops that may be left
// out, in some order that keeps real time, explains every answer. One name.
bool BruteForceLinearizable(const History& h, int64_t within) {
  std::vector<Op> required, optional;
  for (const Op& op : h.ops) {
    if (op.outcome == O::kFailed) continue;
    if (op.outcome != O::kUnknown) {
      required.push_back(op);
    } else if (op.kind != OpKind::kWhereis) {
      optional.push_back(op);
      optional.back().complete = within == kNever ? kNever : op.invoke + within;
    }
  }
  for (uint32_t mask = 0; mask < (1u << optional.size()); ++mask) {
    std::vector<Op> ops = required;
    for (size_t i = 0; i < optional.size(); ++i) {
      if (mask & (1u << i)) ops.push_back(optional[i]);
    }
    std::vector<size_t> order(ops.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    do {
      bool ok = true;
      std::string holder;  // empty: free
      for (size_t a = 0; a < order.size() && ok; ++a) {
        for (size_t b = a + 1; b < order.size() && ok; ++b) {
          ok = !(ops[order[b]].complete < ops[order[a]].invoke);
        }
        const Op& op = ops[order[a]];
        const bool unknown = op.outcome == O::kUnknown;
        switch (op.kind) {
          case OpKind::kRegister:
            if (holder.empty() || holder == op.member) {
              ok = ok && (unknown || op.outcome == O::kOk);
              holder = op.member;
            } else {
              ok = ok && (unknown || (op.outcome == O::kTaken && op.holder == holder));
            }
            break;
          case OpKind::kUnregister:
            if (holder == op.member) {
              ok = ok && (unknown || op.outcome == O::kOk);
              holder.clear();
            } else {
              ok = ok &&
                   (unknown || op.outcome == (holder.empty() ? O::kNotRegistered : O::kNotHolder));
            }
            break;
          case OpKind::kWhereis:
            ok = ok && (holder.empty() ? op.outcome == O::kNone
                                       : op.outcome == O::kHolder && op.holder == holder);
            break;
          case OpKind::kRelease:
            if (holder == op.member) holder.clear();
            break;
        }
      }
      if (ok) return true;
    } while (std::next_permutation(order.begin(), order.end()));
  }
  return false;
}

TEST(LinearizabilityTest, AgreesWithBruteForce) {
  std::mt19937_64 rng(11);
  int violations = 0, total = 0;
  for (int i = 0; i < 1500; ++i) {
    History h = RandomExecution(rng, 6, 1, 50 + 100 * (i % 4));
    if (i % 3 != 0) Mutate(rng, &h);
    if (i % 5 == 0) Mutate(rng, &h);
    CheckOptions options;
    options.unknown_effect_within = i % 2 == 0 ? kNever : 150;
    Result<Verdict> v = Check(h, options);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    const bool expected = BruteForceLinearizable(h, options.unknown_effect_within);
    std::string ops;
    for (const Op& op : h.ops) ops += ToString(op) + "\n";
    ASSERT_EQ(v->linearizable(), expected)
        << "#" << i << " within " << options.unknown_effect_within << "\n"
        << ops << v->explanation;
    ++total;
    if (!expected) {
      ++violations;
      // The window is a witness on its own: it fails from a free name too
      // when it is the whole history, and it is never empty.
      EXPECT_FALSE(v->window.empty());
      EXPECT_FALSE(v->unexplained.empty());
    }
  }
  std::printf("[ info     ] %d histories, %d not linearizable\n", total, violations);
}

// A long run on one name, as an integration test might record: thousands of
// ops, several in flight at once, some timed out.
TEST(LinearizabilityTest, LongHistory) {
  std::mt19937_64 rng(3);
  History h = RandomExecution(rng, 4000, 1, 400);
  auto start = std::chrono::steady_clock::now();
  Result<Verdict> v = Check(h);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start);
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->linearizable()) << v->explanation;
  std::printf("[ info     ] 4000 ops on one name: %llu search steps, %lld ms\n",
              static_cast<unsigned long long>(v->steps), static_cast<long long>(ms.count()));

  // Mutations of single answers. Hundreds of timed-out ops, each able to
  // take effect at any later time, explain almost any answer; bounding when
  // they may take effect restores the checker's power.
  for (int64_t within : {kNever, int64_t{400}}) {
    std::mt19937_64 mrng(5);
    CheckOptions options;
    options.unknown_effect_within = within;
    int caught = 0;
    int64_t worst_ms = 0;
    for (int i = 0; i < 10; ++i) {
      History m = h;
      ASSERT_TRUE(Mutate(mrng, &m));
      start = std::chrono::steady_clock::now();
      v = Check(m, options);
      worst_ms = std::max<int64_t>(worst_ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - start)
                                                 .count());
      ASSERT_TRUE(v.ok());
      ASSERT_NE(v->kind, K::kTooLarge);
      if (v->kind == K::kNotLinearizable) ++caught;
    }
    std::printf(
        "[ info     ] ... 10 single-answer mutations, effects within %s: %d caught, "
        "worst %lld ms\n",
        within == kNever ? "inf" : std::to_string(within).c_str(), caught,
        static_cast<long long>(worst_ms));
    if (within != kNever) {
      EXPECT_GE(caught, 5);
    }
  }
}

}  // namespace
}  // namespace meshbus::testing::lin
