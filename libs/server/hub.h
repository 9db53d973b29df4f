// Fan-out of events to the live streams of one replica, by key (a job id):
// a stream subscribes to one key, or to every key, and is told each event,
// when events may have been missed (the source reconnected: read again), and
// when the server drains (end, saying how to resume). WatchJob and WatchJobs
// (a NOTIFY names the job that changed), StreamMetrics and StreamLogs (a read
// batch of one job's points or lines, shared by all its subscribers) all fan
// out through it.
//
// Subscribers are held weakly and called outside the lock, so one may be
// called just after it unsubscribed (it must tolerate that) and may
// unsubscribe or publish from inside a call. Calls must not block: they note
// what changed and hand work elsewhere.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace trainmesh::server {

template <typename Event>
class Hub {
 public:
  class Subscriber {
   public:
    virtual ~Subscriber() = default;
    // `event` happened to `key` (one this subscriber follows).
    virtual void OnEvent(const std::string& key, const Event& event) = 0;
    // Events may have been missed: read again from the source of truth.
    virtual void Resync() = 0;
    // The server drains: end the stream, telling the client how to resume.
    virtual void Drain() = 0;
  };

  Hub() = default;
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Follows `key`'s events; returns the subscription's id.
  uint64_t Subscribe(const std::string& key, std::weak_ptr<Subscriber> subscriber) {
    absl::MutexLock lock(&mu_);
    const uint64_t id = next_id_++;
    by_key_[key][id] = subscriber;
    key_of_[id] = Entry{key, false, std::move(subscriber)};
    return id;
  }

  // Follows every key's events.
  uint64_t SubscribeAll(std::weak_ptr<Subscriber> subscriber) {
    absl::MutexLock lock(&mu_);
    const uint64_t id = next_id_++;
    all_[id] = subscriber;
    key_of_[id] = Entry{"", true, std::move(subscriber)};
    return id;
  }

  // Ends a subscription (an unknown id is ignored).
  void Unsubscribe(uint64_t id) {
    absl::MutexLock lock(&mu_);
    auto it = key_of_.find(id);
    if (it == key_of_.end()) return;
    if (it->second.all) {
      all_.erase(id);
    } else if (auto key = by_key_.find(it->second.key); key != by_key_.end()) {
      key->second.erase(id);
      if (key->second.empty()) by_key_.erase(key);
    }
    key_of_.erase(it);
  }

  // Tells `key`'s subscribers and every subscriber of all keys.
  void Publish(const std::string& key, const Event& event) {
    for (auto& subscriber : Collect(&key, true)) subscriber->OnEvent(key, event);
  }

  // `key`'s events may have been missed (a read of them failed).
  void Resync(const std::string& key) {
    for (auto& subscriber : Collect(&key, false)) subscriber->Resync();
  }
  // Any event may have been missed (the source reconnected).
  void ResyncAll() {
    for (auto& subscriber : Collect(nullptr, true)) subscriber->Resync();
  }
  // The server drains: every subscriber ends its stream.
  void DrainAll() {
    for (auto& subscriber : Collect(nullptr, true)) subscriber->Drain();
  }

  // Whether anyone here follows `key` itself (subscribers of all keys do not
  // count: they decide per event).
  bool Followed(const std::string& key) const {
    absl::MutexLock lock(&mu_);
    return by_key_.contains(key);
  }

  size_t subscribers() const {
    absl::MutexLock lock(&mu_);
    return key_of_.size();
  }

 private:
  struct Entry {
    std::string key;
    bool all = false;
    std::weak_ptr<Subscriber> subscriber;
  };

  // The live subscribers of `key` (of every key when null), and of all keys
  // when `with_all`; in subscription order per group.
  std::vector<std::shared_ptr<Subscriber>> Collect(const std::string* key, bool with_all) const {
    std::vector<std::shared_ptr<Subscriber>> out;
    absl::MutexLock lock(&mu_);
    if (key == nullptr) {
      for (const auto& [id, entry] : key_of_) {
        if (entry.all && !with_all) continue;
        if (auto s = entry.subscriber.lock()) out.push_back(std::move(s));
      }
      return out;
    }
    if (auto it = by_key_.find(*key); it != by_key_.end()) {
      for (const auto& [id, weak] : it->second) {
        if (auto s = weak.lock()) out.push_back(std::move(s));
      }
    }
    if (with_all) {
      for (const auto& [id, weak] : all_) {
        if (auto s = weak.lock()) out.push_back(std::move(s));
      }
    }
    return out;
  }

  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, std::map<uint64_t, std::weak_ptr<Subscriber>>> by_key_
      ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, std::weak_ptr<Subscriber>> all_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, Entry> key_of_ ABSL_GUARDED_BY(mu_);
};

}  // namespace trainmesh::server
