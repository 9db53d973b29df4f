#include "libs/server/hub.h"

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace trainmesh::server {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Records what the hub tells it; `on_event` (if set) runs inside the call.
class Recorder : public Hub<int>::Subscriber {
 public:
  void OnEvent(const std::string& key, const int& event) override {
    events.emplace_back(key, event);
    if (on_event) on_event();
  }
  void Resync() override { ++resyncs; }
  void Drain() override { ++drains; }

  std::vector<std::pair<std::string, int>> events;
  int resyncs = 0;
  int drains = 0;
  std::function<void()> on_event;
};

// Subscribers of job-a, of job-b and of every key.
class HubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hub.Subscribe("job-a", a);
    hub.Subscribe("job-b", b);
    hub.SubscribeAll(all);
  }
  Hub<int> hub;
  std::shared_ptr<Recorder> a = std::make_shared<Recorder>();
  std::shared_ptr<Recorder> b = std::make_shared<Recorder>();
  std::shared_ptr<Recorder> all = std::make_shared<Recorder>();
};

TEST_F(HubTest, EventsReachTheirKeysSubscribersAndThoseOfAllKeys) {
  hub.Publish("job-a", 1);
  hub.Publish("job-b", 2);
  hub.Publish("job-c", 3);  // nobody follows job-c itself
  EXPECT_THAT(a->events, ElementsAre(std::pair<std::string, int>{"job-a", 1}));
  EXPECT_THAT(b->events, ElementsAre(std::pair<std::string, int>{"job-b", 2}));
  EXPECT_THAT(all->events, ElementsAre(std::pair<std::string, int>{"job-a", 1},
                                       std::pair<std::string, int>{"job-b", 2},
                                       std::pair<std::string, int>{"job-c", 3}));
  EXPECT_TRUE(hub.Followed("job-a"));
  EXPECT_FALSE(hub.Followed("job-c"));  // subscribers of all keys do not count
  EXPECT_EQ(hub.subscribers(), 3u);
}

TEST_F(HubTest, ResyncOfOneKeyTellsOnlyItsSubscribersResyncAllAndDrainAllTellEveryone) {
  hub.Resync("job-a");
  EXPECT_EQ(a->resyncs, 1);
  EXPECT_EQ(b->resyncs, 0);
  EXPECT_EQ(all->resyncs, 0);
  hub.ResyncAll();
  hub.DrainAll();
  for (const auto& r : {a, b, all}) EXPECT_EQ(r->drains, 1);
  EXPECT_EQ(a->resyncs, 2);
  EXPECT_EQ(b->resyncs, 1);
  EXPECT_EQ(all->resyncs, 1);
}

TEST(HubUnsubscribeTest, UnsubscribedAndDestroyedSubscribersHearNothing) {
  Hub<int> hub;
  auto gone = std::make_shared<Recorder>();
  auto left = std::make_shared<Recorder>();
  auto all = std::make_shared<Recorder>();
  hub.Subscribe("job", gone);
  const uint64_t left_id = hub.Subscribe("job", left);
  const uint64_t all_id = hub.SubscribeAll(all);
  std::weak_ptr<Recorder> weak = gone;
  gone.reset();  // held weakly: the hub does not keep it alive
  EXPECT_TRUE(weak.expired());
  hub.Unsubscribe(left_id);
  hub.Unsubscribe(all_id);
  hub.Unsubscribe(12345);  // unknown: ignored
  hub.Publish("job", 1);
  hub.ResyncAll();
  hub.DrainAll();
  EXPECT_THAT(left->events, IsEmpty());
  EXPECT_THAT(all->events, IsEmpty());
  EXPECT_EQ(left->resyncs + left->drains + all->resyncs + all->drains, 0);
  EXPECT_EQ(hub.subscribers(), 1u);  // the destroyed one's subscription, until it unsubscribes
  EXPECT_TRUE(hub.Followed("job"));
}

TEST(HubUnsubscribeTest, ASubscriberMayUnsubscribeAndPublishFromInsideACall) {
  Hub<int> hub;
  auto once = std::make_shared<Recorder>();
  auto other = std::make_shared<Recorder>();
  const uint64_t once_id = hub.Subscribe("job", once);
  hub.Subscribe("next", other);
  once->on_event = [&] {
    hub.Unsubscribe(once_id);
    hub.Publish("next", 7);  // no lock is held during a call
  };
  hub.Publish("job", 1);
  hub.Publish("job", 2);
  EXPECT_THAT(once->events, ElementsAre(std::pair<std::string, int>{"job", 1}));
  EXPECT_THAT(other->events, ElementsAre(std::pair<std::string, int>{"next", 7}));
  EXPECT_FALSE(hub.Followed("job"));
}

}  // namespace
}  // namespace trainmesh::server
