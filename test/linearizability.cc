#include "test/linearizability.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace meshbus::testing::lin {

std::string_view OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kRegister:
      return "register";
    case OpKind::kUnregister:
      return "unregister";
    case OpKind::kWhereis:
      return "whereis";
    case OpKind::kRelease:
      return "release";
  }
  return "?";
}

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kTaken:
      return "taken";
    case Outcome::kNotRegistered:
      return "not_registered";
    case Outcome::kNotHolder:
      return "not_holder";
    case Outcome::kHolder:
      return "holder";
    case Outcome::kNone:
      return "none";
    case Outcome::kUnknown:
      return "unknown";
    case Outcome::kFailed:
      return "failed";
  }
  return "?";
}

namespace {

std::string Time(int64_t t, int64_t base) {
  if (t == kNever) return "inf";
  return (t >= base ? "+" : "") + std::to_string(t - base);
}

}  // namespace

std::string ToString(const Op& op, int64_t base) {
  std::string s = "#" + std::to_string(op.id) + " c" + std::to_string(op.client) + " ";
  s += OpKindName(op.kind);
  switch (op.kind) {
    case OpKind::kRegister:
    case OpKind::kUnregister:
      s += "(" + op.name + ", " + op.member + ")";
      break;
    case OpKind::kWhereis:
      s += "(" + op.name + ")";
      break;
    case OpKind::kRelease:
      s += "(" + op.member + ")";
      break;
  }
  const bool unknown = op.outcome == Outcome::kUnknown;
  s += " [" + Time(op.invoke, base) + ", " + Time(unknown ? kNever : op.complete, base) +
       (unknown ? ")" : "]") + " -> ";
  s += OutcomeName(op.outcome);
  if (op.outcome == Outcome::kTaken || op.outcome == Outcome::kHolder) s += "(" + op.holder + ")";
  return s;
}

namespace {

// ---- one name's sub-history -------------------------------------------------

constexpr int kFree = -1;

// An op of one name's sub-history, with members as small integers.
struct SubOp {
  size_t src = 0;  // index in History::ops
  OpKind kind = OpKind::kWhereis;
  Outcome outcome = Outcome::kUnknown;  // kUnknown: any effect the model allows
  int member = kFree;
  int holder = kFree;  // kTaken, kHolder
  int64_t invoke = 0;
  int64_t complete = kNever;  // kNever for optional ops
  int64_t deadline = kNever;  // optional ops: the latest time they may take effect
  // Required ops must be linearized; optional ones (unknown outcomes, and ops
  // relaxed while minimizing) may be left out.
  bool required = true;
};

// The answer implies no change of state, whatever the state was.
bool IsPure(const SubOp& op) {
  switch (op.outcome) {
    case Outcome::kTaken:
    case Outcome::kNotRegistered:
    case Outcome::kNotHolder:
    case Outcome::kHolder:
    case Outcome::kNone:
      return true;
    default:
      return false;
  }
}

// The holder after `op` runs with holder `s`, or nullopt if `s` could not
// have produced op's answer.
std::optional<int> Apply(const SubOp& op, int s) {
  const int m = op.member;
  switch (op.kind) {
    case OpKind::kRegister:
      if (op.outcome == Outcome::kUnknown) return (s == kFree || s == m) ? m : s;
      if (op.outcome == Outcome::kOk) {
        if (s == kFree || s == m) return m;
        return std::nullopt;
      }
      if (s != kFree && s != m && s == op.holder) return s;  // taken
      return std::nullopt;
    case OpKind::kUnregister:
      if (op.outcome == Outcome::kUnknown) return s == m ? kFree : s;
      if (op.outcome == Outcome::kOk) {
        if (s == m) return kFree;
        return std::nullopt;
      }
      if (op.outcome == Outcome::kNotRegistered) {
        if (s == kFree) return s;
        return std::nullopt;
      }
      if (s != kFree && s != m) return s;  // not_holder
      return std::nullopt;
    case OpKind::kWhereis:
      if (op.outcome == Outcome::kNone ? s == kFree : s == op.holder && s != kFree) return s;
      return std::nullopt;
    case OpKind::kRelease:
      return s == m ? kFree : s;
  }
  return std::nullopt;
}

struct SubHistory {
  std::string name;
  std::vector<std::string> members;  // index -> member
  int registrants = 0;               // members [0, registrants) register the name
  std::vector<SubOp> ops;            // by invocation time
};

void SortByInvoke(std::vector<SubOp>* ops) {
  std::stable_sort(ops->begin(), ops->end(), [](const SubOp& a, const SubOp& b) {
    return std::tie(a.invoke, a.complete) < std::tie(b.invoke, b.complete);
  });
}

// ---- the search -------------------------------------------------------------

enum class Found : uint8_t { kLinearizable, kNotLinearizable, kTooLarge };

struct KeyHash {
  size_t operator()(const std::vector<uint64_t>& key) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t w : key) {
      h ^= w + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
      h *= 0xff51afd7ed558ccdull;
    }
    return static_cast<size_t>(h ^ (h >> 33));
  }
};

// Wing & Gong's search, depth first with an explicit stack, plus:
//  - candidates: only ops invoked no later than the earliest completion among
//    the required ops not yet linearized (any other would jump over it), and
//    optional ops whose deadline no linearized op was invoked after;
//  - pure ops (answers that change nothing) are linearized as soon as they are
//    candidates, agree with the holder and no live optional op must precede
//    them: moving such an op earlier, past ops that do not precede it in real
//    time, keeps every answer (the others, past a deadline, are moves);
//  - optional ops of one class (same kind, member and answer) that are all
//    candidates are interchangeable but for their deadlines: only the one
//    with the earliest deadline is tried;
//  - a memo of (linearized set, holder) already explored; optional ops invoked
//    before the first pending required op are counted by class, not named,
//    when none has a deadline.
class Searcher {
 public:
  Searcher(const std::vector<SubOp>& ops, uint64_t max_steps)
      : ops_(ops), max_steps_(max_steps), lin_(ops.size(), false), reach_(ops.size()) {
    std::map<std::tuple<OpKind, Outcome, int, int>, int> classes;
    class_.assign(ops.size(), -1);
    for (size_t i = 0; i < ops.size(); ++i) {
      if (ops[i].required) continue;
      optional_.push_back(i);
      if (ops[i].deadline != kNever) deadlines_ = true;
      auto [it, added] = classes.emplace(
          std::make_tuple(ops[i].kind, ops[i].outcome, ops[i].member, ops[i].holder),
          static_cast<int>(classes.size()));
      class_[i] = it->second;
    }
    num_classes_ = classes.size();
    // reach_[i]: ops at or past it were invoked after op i completed, so none
    // of them is linearized while op i is not.
    size_t j = 0;
    for (size_t i = 0; i < ops.size(); ++i) {
      j = std::max(j, i);
      while (j < ops.size() && ops[j].invoke <= ops[i].complete) ++j;
      reach_[i] = j;
    }
  }

  // Is there a linearization from one of the initial holders?
  Found Run(const std::vector<int>& initial) {
    for (int s : initial) {
      Found f = Search(s);
      if (f != Found::kNotLinearizable) return f;
    }
    return Found::kNotLinearizable;
  }

  uint64_t steps() const { return steps_; }

 private:
  struct Frame {
    Frame(int state, size_t lo, int64_t last_invoke, int applied)
        : state(state), lo(lo), last_invoke(last_invoke), applied(applied) {}

    int state;
    size_t lo;                                  // first required op not linearized
    int64_t last_invoke;                        // the latest invocation among linearized ops
    int applied;                                // the op linearized to get here, or -1
    std::vector<int> greedy;                    // pure ops linearized on entry
    std::vector<std::pair<int, int>> children;  // (op, holder after it)
    size_t next = 0;
  };

  enum class Entered : uint8_t { kGoal, kExpand, kDead, kOutOfSteps };

  Found Search(int initial) {
    std::vector<Frame> stack;
    stack.emplace_back(initial, 0, std::numeric_limits<int64_t>::min(), -1);
    for (;;) {
      switch (Enter(&stack.back())) {
        case Entered::kGoal:
          Unwind(&stack);
          return Found::kLinearizable;
        case Entered::kOutOfSteps:
          Unwind(&stack);
          return Found::kTooLarge;
        default:
          break;
      }
      // Backtrack to the deepest frame with a move left, and make it.
      while (!stack.empty() && stack.back().next == stack.back().children.size()) Pop(&stack);
      if (stack.empty()) return Found::kNotLinearizable;
      Frame& f = stack.back();
      auto [op, state] = f.children[f.next++];
      lin_[op] = true;
      const size_t lo = f.lo;
      const int64_t last = std::max(f.last_invoke, ops_[op].invoke);
      stack.emplace_back(state, lo, last, op);
    }
  }

  void Pop(std::vector<Frame>* stack) {
    Frame& f = stack->back();
    for (int i : f.greedy) lin_[i] = false;
    if (f.applied >= 0) lin_[f.applied] = false;
    stack->pop_back();
  }

  void Unwind(std::vector<Frame>* stack) {
    while (!stack->empty()) Pop(stack);
  }

  // An optional op not linearized that can still be: no linearized op was
  // invoked after its deadline.
  bool Live(size_t j, const Frame& f) const {
    return !lin_[j] && ops_[j].deadline >= f.last_invoke;
  }

  // Linearizes the pure candidates, then lists the other moves from here.
  Entered Enter(Frame* f) {
    const size_t n = ops_.size();
    size_t hi = 0;  // candidates lie in [f->lo, hi), plus optional ops before lo
    for (;;) {
      while (f->lo < n && (!ops_[f->lo].required || lin_[f->lo])) ++f->lo;
      if (f->lo == n) return Entered::kGoal;
      // Ops invoked after `bound` would jump over a pending completion. Later
      // ops complete after they are invoked, so they cannot lower it.
      int64_t bound = kNever;
      size_t i = f->lo;
      for (; i < n && ops_[i].invoke <= bound; ++i) {
        if (ops_[i].required && !lin_[i]) bound = std::min(bound, ops_[i].complete);
      }
      hi = i;
      while (hi > f->lo && ops_[hi - 1].invoke > bound) --hi;
      // A pure op may not jump over a live optional op's deadline either.
      int64_t pure_bound = bound;
      if (deadlines_) {
        for (size_t j : optional_) {
          if (j >= hi) break;
          if (Live(j, *f)) pure_bound = std::min(pure_bound, ops_[j].deadline);
        }
      }
      bool any = false;
      for (size_t j = f->lo; j < hi && ops_[j].invoke <= pure_bound; ++j) {
        if (lin_[j] || !IsPure(ops_[j]) || !Apply(ops_[j], f->state)) continue;
        lin_[j] = true;
        f->greedy.push_back(static_cast<int>(j));
        f->last_invoke = std::max(f->last_invoke, ops_[j].invoke);
        any = true;
      }
      if (!any) break;
    }
    if (!Remember(*f)) return Entered::kDead;
    if (++steps_ > max_steps_) return Entered::kOutOfSteps;

    // Per class, the live candidate with the earliest deadline.
    std::vector<int> best(num_classes_, -1);
    auto consider = [&](size_t j) {
      if (lin_[j]) return;
      if (!ops_[j].required) {
        if (!Live(j, *f)) return;
        int& b = best[class_[j]];
        if (b < 0 || ops_[j].deadline < ops_[b].deadline) b = static_cast<int>(j);
        return;
      }
      if (std::optional<int> next = Apply(ops_[j], f->state)) {
        f->children.emplace_back(static_cast<int>(j), *next);
      }
    };
    for (size_t j = f->lo; j < hi; ++j) consider(j);
    for (size_t j : optional_) {
      if (j >= f->lo) break;
      consider(j);
    }
    for (int j : best) {
      if (j < 0) continue;
      std::optional<int> next = Apply(ops_[j], f->state);
      if (next && *next != f->state) f->children.emplace_back(j, *next);  // else: leave it out
    }
    // The earliest completion first: the order a correct system most likely took.
    std::stable_sort(f->children.begin(), f->children.end(), [&](const auto& a, const auto& b) {
      return ops_[a.first].complete < ops_[b.first].complete;
    });
    return Entered::kExpand;
  }

  // What determines the future: the holder, the first pending required op,
  // which of the ops that could overtake it are linearized and, when some
  // optional op has a deadline, which optional ops invoked before it are
  // live and the latest invocation linearized.
  std::vector<uint64_t> Key(const Frame& f) const {
    std::vector<uint64_t> key = {static_cast<uint64_t>(static_cast<int64_t>(f.state)), f.lo};
    uint64_t word = 0;
    int bits = 0;
    auto add_bit = [&](bool bit) {
      word = (word << 1) | (bit ? 1 : 0);
      if (++bits == 64) {
        key.push_back(word);
        word = 0;
        bits = 0;
      }
    };
    for (size_t j = f.lo; j < reach_[f.lo]; ++j) add_bit(lin_[j]);
    if (deadlines_) {
      key.push_back(static_cast<uint64_t>(f.last_invoke));
      for (size_t j : optional_) {
        if (j >= f.lo) break;
        add_bit(Live(j, f));
      }
    }
    if (bits > 0) key.push_back(word);
    return key;
  }

  // Without deadlines, the optional ops invoked before the first pending
  // required op stay candidates for good: only how many of each class remain
  // matters, and more is never worse.
  std::vector<uint32_t> Left(const Frame& f) const {
    std::vector<uint32_t> left;
    if (deadlines_ || num_classes_ == 0) return left;
    left.assign(num_classes_, 0);
    for (size_t j : optional_) {
      if (j >= f.lo) break;
      if (!lin_[j]) ++left[class_[j]];
    }
    return left;
  }

  // Records the node; false if it, or one with the same key and at least as
  // many optional ops left of every class, was entered before. Pruning the
  // latter is safe: it can make every move this one can (a covering check,
  // as with zones in timed automata), so it finds a linearization if this
  // node has one.
  bool Remember(const Frame& f) {
    std::vector<std::vector<uint32_t>>& seen = memo_[Key(f)];
    std::vector<uint32_t> left = Left(f);
    auto covers = [](const std::vector<uint32_t>& a, const std::vector<uint32_t>& b) {
      for (size_t c = 0; c < a.size(); ++c) {
        if (a[c] < b[c]) return false;
      }
      return true;
    };
    for (const std::vector<uint32_t>& s : seen) {
      if (covers(s, left)) return false;
    }
    std::erase_if(seen, [&](const std::vector<uint32_t>& s) { return covers(left, s); });
    seen.push_back(std::move(left));
    return true;
  }

  const std::vector<SubOp>& ops_;
  const uint64_t max_steps_;
  std::vector<bool> lin_;
  std::vector<size_t> reach_;
  std::vector<size_t> optional_;  // indices of optional ops, ascending
  std::vector<int> class_;
  size_t num_classes_ = 0;
  bool deadlines_ = false;  // some optional op has one
  std::unordered_map<std::vector<uint64_t>, std::vector<std::vector<uint32_t>>, KeyHash> memo_;
  uint64_t steps_ = 0;
};

// ---- building sub-histories -------------------------------------------------

Status Validate(const Op& op) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("op #" + std::to_string(op.id) + ": " + std::string(why));
  };
  static const std::map<OpKind, std::set<Outcome>> kAllowed = {
      {OpKind::kRegister, {Outcome::kOk, Outcome::kTaken, Outcome::kUnknown, Outcome::kFailed}},
      {OpKind::kUnregister,
       {Outcome::kOk, Outcome::kNotRegistered, Outcome::kNotHolder, Outcome::kUnknown,
        Outcome::kFailed}},
      {OpKind::kWhereis, {Outcome::kHolder, Outcome::kNone, Outcome::kUnknown, Outcome::kFailed}},
      {OpKind::kRelease, {Outcome::kOk, Outcome::kUnknown, Outcome::kFailed}},
  };
  auto allowed = kAllowed.find(op.kind);
  if (allowed == kAllowed.end()) return bad("unknown op kind");
  if (!allowed->second.count(op.outcome)) {
    return bad(std::string(OpKindName(op.kind)) + " cannot answer " +
               std::string(OutcomeName(op.outcome)));
  }
  if (op.kind != OpKind::kRelease && op.name.empty()) return bad("no name");
  if (op.kind != OpKind::kWhereis && op.member.empty()) return bad("no member");
  if ((op.outcome == Outcome::kTaken || op.outcome == Outcome::kHolder) && op.holder.empty()) {
    return bad("no holder");
  }
  if (op.outcome != Outcome::kUnknown) {
    if (op.complete == kNever) return bad("a known outcome needs a completion time");
    if (op.complete < op.invoke) return bad("completes before it is invoked");
  }
  return Status::Ok();
}

// Failed ops and unknown reads say nothing, and are left out.
bool Constrains(const Op& op) {
  if (op.outcome == Outcome::kFailed) return false;
  return !(op.kind == OpKind::kWhereis && op.outcome == Outcome::kUnknown);
}

std::vector<SubHistory> Split(const History& history, const CheckOptions& options) {
  std::map<std::string, std::vector<size_t>> by_name;
  std::map<std::string, std::vector<size_t>> releases;  // by member
  for (size_t i = 0; i < history.ops.size(); ++i) {
    const Op& op = history.ops[i];
    if (!Constrains(op)) continue;
    if (op.kind == OpKind::kRelease) {
      releases[op.member].push_back(i);
    } else {
      by_name[op.name].push_back(i);
    }
  }
  std::vector<SubHistory> out;
  for (const auto& [name, indices] : by_name) {
    SubHistory sub;
    sub.name = name;
    std::map<std::string, int> ids;
    auto id = [&](const std::string& m) {
      auto [it, added] = ids.emplace(m, static_cast<int>(sub.members.size()));
      if (added) sub.members.push_back(m);
      return it->second;
    };
    // Registrants first: only they can hold the name, so only their releases
    // matter, and only they are initial holders of a window.
    for (size_t i : indices) {
      if (history.ops[i].kind == OpKind::kRegister) id(history.ops[i].member);
    }
    sub.registrants = static_cast<int>(sub.members.size());
    std::vector<size_t> all = indices;
    for (int m = 0; m < sub.registrants; ++m) {
      auto it = releases.find(sub.members[m]);
      if (it != releases.end()) all.insert(all.end(), it->second.begin(), it->second.end());
    }
    for (size_t i : all) {
      const Op& op = history.ops[i];
      SubOp s;
      s.src = i;
      s.kind = op.kind;
      s.outcome = op.outcome;
      s.invoke = op.invoke;
      if (op.kind != OpKind::kWhereis) s.member = id(op.member);
      if (op.outcome == Outcome::kTaken || op.outcome == Outcome::kHolder) s.holder = id(op.holder);
      s.required = op.outcome != Outcome::kUnknown;
      s.complete = s.required ? op.complete : kNever;
      if (!s.required && options.unknown_effect_within != kNever) {
        s.deadline = op.invoke > kNever - options.unknown_effect_within
                         ? kNever
                         : op.invoke + options.unknown_effect_within;
      }
      sub.ops.push_back(s);
    }
    SortByInvoke(&sub.ops);
    out.push_back(std::move(sub));
  }
  return out;
}

// ---- explaining a violation -------------------------------------------------

// Makes a required op optional: it may be left out (it took effect outside
// the window), and if it is linearized its answer still holds, by `deadline`.
void Relax(SubOp* op, int64_t deadline) {
  if (op->required) op->deadline = deadline;
  op->required = false;
  op->complete = kNever;
}

// The prefix of the history up to time t: ops answered after t may or may not
// have taken effect by then; ops invoked after t do not exist yet.
std::vector<SubOp> Prefix(const std::vector<SubOp>& ops, int64_t t) {
  std::vector<SubOp> out;
  for (SubOp op : ops) {
    if (op.invoke > t) continue;
    if (op.required && op.complete > t) Relax(&op, kNever);  // its completion is past every op here
    if (!op.required && IsPure(op)) continue;                // an optional read helps nothing
    out.push_back(op);
  }
  return out;
}

// The part of a prefix from time s: ops answered before s are linearized
// before every op of the window, so they only decide the holder at s, which
// is left free; ops in flight at s may fall on either side of it.
std::vector<SubOp> Suffix(const std::vector<SubOp>& ops, int64_t s) {
  std::vector<SubOp> out;
  for (SubOp op : ops) {
    if (op.invoke < s) {
      if (op.required && op.complete < s) continue;
      Relax(&op, op.complete);
      if (IsPure(op)) continue;
    }
    out.push_back(op);
  }
  return out;
}

struct Explanation {
  std::vector<SubOp> window;
  int64_t t = 0;       // the end of the window: the first time the prefix fails
  int64_t s = kNever;  // the start, or kNever for the whole prefix (from a free name)
};

// The smallest prefix that fails (prefixes of a linearizable history are
// linearizable, so a binary search finds it), then the shortest window of it
// that fails from any holder (galloping, then a binary search: not monotone
// in theory, but every window returned did fail).
Explanation Minimize(const SubHistory& sub, const CheckOptions& options, uint64_t* steps) {
  auto fails = [&](const std::vector<SubOp>& ops, const std::vector<int>& initial) {
    Searcher searcher(ops, options.max_steps);
    Found f = searcher.Run(initial);
    *steps += searcher.steps();
    return f == Found::kNotLinearizable;
  };
  std::vector<int64_t> ends;
  for (const SubOp& op : sub.ops) {
    if (op.required) ends.push_back(op.complete);
  }
  std::sort(ends.begin(), ends.end());
  ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
  size_t lo = 0, hi = ends.size() - 1;  // ends[hi] fails: it is the whole history
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (fails(Prefix(sub.ops, ends[mid]), {kFree})) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  Explanation e;
  e.t = ends[hi];
  e.window = Prefix(sub.ops, e.t);

  std::vector<int64_t> starts;  // distinct invocation times, latest first
  for (const SubOp& op : e.window) starts.push_back(op.invoke);
  std::sort(starts.rbegin(), starts.rend());
  starts.erase(std::unique(starts.begin(), starts.end()), starts.end());
  std::vector<int> any_holder = {kFree};
  for (int m = 0; m < sub.registrants; ++m) any_holder.push_back(m);
  // starts[k] for k < last; the whole prefix (known to fail) past it.
  auto window_fails = [&](size_t k) {
    return k + 1 >= starts.size() || fails(Suffix(e.window, starts[k]), any_holder);
  };
  size_t good = 0, bad = 1;  // windows of starts[0..good] are not known to fail
  if (window_fails(0)) {
    bad = 0;
  } else {
    while (!window_fails(bad)) {
      good = bad;
      bad = std::min(bad * 2, starts.size() - 1);
    }
    while (bad - good > 1) {
      size_t mid = good + (bad - good) / 2;
      if (window_fails(mid)) {
        bad = mid;
      } else {
        good = mid;
      }
    }
  }
  if (bad + 1 < starts.size()) {
    e.s = starts[bad];
    e.window = Suffix(e.window, e.s);
  }
  return e;
}

std::string Explain(const History& history, const SubHistory& sub, const Explanation& e,
                    Verdict* v) {
  int64_t base = kNever;
  for (const Op& op : history.ops) base = std::min(base, op.invoke);
  std::string out = "name \"" + sub.name + "\" is not linearizable: no order of these " +
                    std::to_string(e.window.size()) + " ops explains every answer, " +
                    (e.s == kNever ? "starting from a free name"
                                   : "whoever held the name at " + Time(e.s, base)) +
                    ".\nTimes are relative to the first invocation; * marks the last answers (at " +
                    Time(e.t, base) +
                    "), ~ the ops that may be left out (unknown, in flight when the window "
                    "starts, or answered after it ends):\n";
  for (const SubOp& op : e.window) {
    const Op& src = history.ops[op.src];
    const bool last = op.required && op.complete == e.t;
    out += last ? "  * " : (op.required ? "    " : "  ~ ");
    out += ToString(src, base) + "\n";
    v->window.push_back(src);
    if (last) v->unexplained.push_back(src.id);
  }
  return out;
}

}  // namespace

Result<Verdict> Check(const History& history, const CheckOptions& options) {
  for (const Op& op : history.ops) {
    Status s = Validate(op);
    if (!s.ok()) return s;
  }
  Verdict verdict;
  for (const SubHistory& sub : Split(history, options)) {
    Searcher searcher(sub.ops, options.max_steps);
    Found found = searcher.Run({kFree});
    verdict.steps += searcher.steps();
    if (found == Found::kTooLarge && verdict.kind == Verdict::Kind::kLinearizable) {
      // Keep going: another name may still show a definite violation.
      verdict.kind = Verdict::Kind::kTooLarge;
      verdict.name = sub.name;
      verdict.explanation =
          "name \"" + sub.name + "\": unknown, too large: " + std::to_string(sub.ops.size()) +
          " ops, no verdict within " + std::to_string(options.max_steps) + " search steps";
    }
    if (found != Found::kNotLinearizable) continue;
    Verdict failed;
    failed.kind = Verdict::Kind::kNotLinearizable;
    failed.name = sub.name;
    Explanation e;
    if (options.minimize) {
      e = Minimize(sub, options, &verdict.steps);
    } else {
      e.window = sub.ops;
      for (const SubOp& op : sub.ops) {
        if (op.required) e.t = std::max(e.t, op.complete);
      }
    }
    failed.explanation = Explain(history, sub, e, &failed);
    failed.steps = verdict.steps;
    return failed;
  }
  return verdict;
}

// ---- Recorder ---------------------------------------------------------------

Recorder::Recorder()
    : Recorder([] {
        return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
      }) {}

Recorder::Recorder(Clock clock) : clock_(std::move(clock)) {}

uint64_t Recorder::Invoke(int client, OpKind kind, std::string name, std::string member) {
  std::lock_guard<std::mutex> lock(mu_);
  Op op;
  op.id = ops_.size();
  op.client = client;
  op.kind = kind;
  op.name = std::move(name);
  op.member = std::move(member);
  // Read under the lock, so that ids and invocation times agree; the request
  // is sent after this returns, so the time is never late.
  op.invoke = clock_();
  ops_.push_back(std::move(op));
  done_.push_back(false);
  return ops_.back().id;
}

Status Recorder::Complete(uint64_t id, Outcome outcome, std::string holder) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id >= ops_.size()) return Status::InvalidArgument("no op #" + std::to_string(id));
  if (done_[id]) return Status::InvalidArgument("op #" + std::to_string(id) + " completed twice");
  done_[id] = true;
  Op& op = ops_[id];
  op.outcome = outcome;
  op.holder = std::move(holder);
  // Read after the answer arrived: a late time only widens the interval.
  op.complete = outcome == Outcome::kUnknown ? kNever : clock_();
  return Status::Ok();
}

History Recorder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return History{ops_};
}

}  // namespace meshbus::testing::lin
