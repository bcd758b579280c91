// Emitter: one emitter of a store's subscription (DESIGN.md §6, issue #5),
// on a session (Client) and a thread of its own. It joins the subscription's
// emitter group and, for every event a writer's BroadcastEvent sends it,
// checks that the subscription selects the event, publishes it on the
// subscription's topic and answers the writer. A store leader runs a pool of
// them per subscription; a process may run one by hand too.
//
// Stopping leaves the group first, then forwards what was already handed to
// it: an event a writer sent before the leave is published, or its writer
// gets kUnavailable (never silence). Thread-safe: every method may be called
// from any thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "sdk/client.h"
#include "sdk/eventstore.h"

namespace meshbus::eventstore {

class Emitter {
 public:
  // Connects (options.name is replaced by `name`, e.g. an EmitterName) and
  // joins the emitter group of (store, subscription.id) before it returns.
  static Result<std::unique_ptr<Emitter>> Start(const ClientOptions& options,
                                                const std::string& store,
                                                const Subscription& subscription,
                                                const std::string& name);
  ~Emitter();  // Stop() and Join()
  Emitter(const Emitter&) = delete;
  Emitter& operator=(const Emitter&) = delete;

  // Asks the thread to leave, drain and stop; Join() waits for it. Asking
  // every emitter of a pool first and then joining them stops them at once.
  void RequestStop();
  void Join();

  const MemberId& self() const { return self_; }
  // False once it was asked to stop, or its session is gone (its broker
  // restarted or timed it out): it takes no more events, and should be replaced.
  bool healthy() const { return !failed_ && !stop_; }
  // Events forwarded to subscribers, by how they came; and refused (not
  // selected by the subscription, or undecodable), each answered with why.
  uint64_t forwarded(EmitterTag tag) const;
  uint64_t refused() const { return refused_; }
  // Answers the broker could not deliver to a writer (it had given up).
  uint64_t late_answers() const { return late_answers_; }

 private:
  Emitter(Client client, std::string store, Subscription subscription);
  void Run();
  void Handle(const Delivery& d);

  Client client_;
  const MemberId self_;
  const std::string store_;
  const Subscription subscription_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> failed_{false};
  std::atomic<uint64_t> local_{0}, remote_{0}, refused_{0}, late_answers_{0};
  std::thread thread_;
};

}  // namespace meshbus::eventstore
