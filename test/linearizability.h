// A linearizability checker for histories of name-registry operations (issue
// #4), in the manner of Wing & Gong and Knossos. Integration tests record what
// concurrent clients asked the registry and what they were answered, while
// brokers are killed and partitioned; Check then decides whether one
// sequential order of the operations, consistent with real time, explains
// every answer (§5: a name is never given out twice, a consistent read never
// goes back in time). Check is a pure function, thread-safe. Recorder is
// thread-safe: client threads record into one Recorder.
//
// The model: each name is free or held by one member.
//   register(N, M)    ok if N is free or already held by M (idempotent);
//                     taken(H) if held by another member H.
//   unregister(N, M)  ok (N becomes free) if held by M; not_registered if N is
//                     free; not_holder if held by another member.
//   whereis(N)        holder(H) or none: a consistent read, through the leader.
//   release(M)        every name held by M becomes free (M's session ended).
// An answer of unknown (timeout, no answer, lost connection) means that the
// operation may take effect at any point after its invocation, even after the
// client gave up, or never. An answer of failed (e.g. no leader) means that it
// did not take effect; failed and unknown reads constrain nothing.
//
// Names are independent (P-compositionality), so each name's sub-history, with
// the releases of the members that register it, is searched alone: depth
// first over (ops linearized, holder), memoized, with only the ops invoked
// before the earliest pending completion as candidates (see the .cc for the
// other prunings). A linearizable history is usually settled in about one
// step per op. A violation needs every order ruled out: the steps grow ~1.5x
// per mutating op in flight at once on the name (6,000 for 20; 600,000 for
// 32; the default budget ends at ~34). Past CheckOptions::max_steps the
// verdict is kTooLarge rather than a guess.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "topics/status.h"

namespace meshbus::testing::lin {

// Times are integers from one clock the test chooses (e.g. steady_clock in
// nanoseconds). An op precedes another only if it completed strictly before
// the other was invoked: equal readings on two threads say nothing of their
// order. kNever is the completion time of an op whose outcome is unknown.
inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

enum class OpKind : uint8_t { kRegister, kUnregister, kWhereis, kRelease };

enum class Outcome : uint8_t {
  kOk,             // register, unregister, release
  kTaken,          // register: the name is held by Op::holder
  kNotRegistered,  // unregister: the name is free
  kNotHolder,      // unregister: the name is held by another member
  kHolder,         // whereis: the name is held by Op::holder
  kNone,           // whereis: the name is free
  kUnknown,        // any op: it may have taken effect, or not
  kFailed,         // any op: it definitely did not take effect
};

std::string_view OpKindName(OpKind kind);
std::string_view OutcomeName(Outcome outcome);

struct Op {
  uint64_t id = 0;  // for the reader of an explanation; need not be unique
  int client = 0;
  OpKind kind = OpKind::kWhereis;
  std::string name;    // unused by release
  std::string member;  // who acts: register, unregister, release; unused by whereis
  int64_t invoke = 0;
  // When the answer arrived. Ignored (treated as kNever) for kUnknown: the op
  // may still take effect after the client stopped waiting (but see
  // CheckOptions::unknown_effect_within).
  int64_t complete = kNever;
  Outcome outcome = Outcome::kUnknown;
  std::string holder;  // kTaken and kHolder
};

// "#7 c2 register(svc, m1) [+100, +250] -> taken(m2)"; times relative to `base`.
std::string ToString(const Op& op, int64_t base = 0);

struct History {
  std::vector<Op> ops;  // in any order
};

struct CheckOptions {
  // Search nodes per name and per search: each a distinct set of linearized
  // ops and holder, ~2.5 us and ~170 bytes of memo. The default bounds one
  // search to ~3 s and ~170 MB.
  uint64_t max_steps = 1'000'000;
  // On a violation, search for the smallest failing window (a few more
  // searches of the failing name); without it the window is the whole name.
  bool minimize = true;
  // An op answered unknown takes effect within this long after its
  // invocation, if at all. By default at any time: sound, but in a long
  // history with many timeouts the pending ops can explain almost any later
  // answer. Set it only to a bound the test knows, e.g. its longest
  // partition plus an election and a commit: once a leader of a later term
  // has committed an entry, every earlier entry is committed or gone.
  int64_t unknown_effect_within = kNever;
};

struct Verdict {
  enum class Kind : uint8_t { kLinearizable, kNotLinearizable, kTooLarge };
  Kind kind = Kind::kLinearizable;
  // kNotLinearizable: the first name (in name order) whose sub-history fails;
  // kTooLarge: the first name whose search ran out of steps.
  std::string name;
  // kNotLinearizable: the smallest failing window found, in invocation order,
  // and the ops in it whose answers come last (no shorter prefix fails).
  std::vector<Op> window;
  std::vector<uint64_t> unexplained;
  std::string explanation;  // for a test's failure message; empty when linearizable
  uint64_t steps = 0;       // search nodes, all names and the minimization together

  bool linearizable() const { return kind == Kind::kLinearizable; }
};

// InvalidArgument for a malformed history: an outcome that its kind cannot
// have, an empty name or member, a known outcome without a completion time, a
// completion before the invocation.
Result<Verdict> Check(const History& history, const CheckOptions& options = {});

// Records ops from several client threads: Invoke just before sending a
// request, Complete as soon as its answer (or its timeout) is known. Ops never
// completed are reported as kUnknown.
class Recorder {
 public:
  using Clock = std::function<int64_t()>;

  Recorder();  // steady_clock, in nanoseconds
  explicit Recorder(Clock clock);

  // Returns the op's id: 0, 1, 2, ... in invocation order.
  uint64_t Invoke(int client, OpKind kind, std::string name, std::string member);
  // InvalidArgument for an id never returned by Invoke or already completed.
  Status Complete(uint64_t id, Outcome outcome, std::string holder = {});

  History Snapshot() const;

 private:
  Clock clock_;
  mutable std::mutex mu_;
  std::vector<Op> ops_;     // guarded by mu_; index == id
  std::vector<bool> done_;  // guarded by mu_
};

}  // namespace meshbus::testing::lin
