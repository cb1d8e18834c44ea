/*
 * test_gate_backends — the backend list (gate_backends_parse), the order of
 * one hand-off (gate_backends_plan) and the passive-health rule
 * (gate_backends_result): skipped after fail_max failures in a row, back-off
 * doubling up to the maximum, back on the first success. The clock is ours.
 */
#include <string.h>
#include "unit.h"
#include "../../gate/gate_backends.c"

static long long fake_now = 1000000;

long long
gate_now_ms(void)
{
	return fake_now;
}

/* what gate_metrics.c would count, per board slot */
static unsigned tries[GATE_BACKENDS_MAX][2];

void
gate_metric_backend_result(unsigned slot, int ok)
{
	if (slot < GATE_BACKENDS_MAX)
		tries[slot][ok ? 0 : 1]++;
}

static const struct gate_backend_rule rule = { 2, 10, 30, GBP_ROUND_ROBIN };

static void
setup(struct gate_backend_board *b, struct gate_backend_list *l, const char *s)
{
	const char *why = NULL;

	memset(b, 0, sizeof(*b));
	EXPECT_INT(gate_backends_parse(s, ',', l, &why), 0);
	gate_backends_bind(b, l);
}

TEST(parse)
{
	struct gate_backend_list l;
	const char *why = NULL;

	EXPECT_INT(gate_backends_parse("127.0.0.1:25, [::1]:26 ,127.0.0.1:25", ',', &l, &why), 0);
	EXPECT_INT(l.n, 2);	/* the same address twice: once */
	EXPECT_STR(l.v[1].name, "[::1]:26");
	EXPECT_INT(gate_backends_parse("127.0.0.1:587|127.0.0.2:587", '|', &l, &why), 0);
	EXPECT_INT(l.n, 2);
	EXPECT_INT(gate_backends_parse("127.0.0.1:25,,127.0.0.2:25", ',', &l, &why), -1);
	EXPECT_INT(gate_backends_parse("127.0.0.1", ',', &l, &why), -1);
	EXPECT_INT(gate_backends_parse("", ',', &l, &why), -1);
}

TEST(round_robin_spreads)
{
	struct gate_backend_board b;
	struct gate_backend_list l;
	unsigned order[GATE_BACKENDS_MAX], first[3] = { 0, 0, 0 };

	setup(&b, &l, "127.0.0.1:25, 127.0.0.2:25, 127.0.0.3:25");
	for (int i = 0; i < 30; i++) {
		EXPECT_INT(gate_backends_plan(&b, &l, &rule, order), 3);
		first[order[0]]++;
	}
	EXPECT_INT(first[0], 10);
	EXPECT_INT(first[1], 10);
	EXPECT_INT(first[2], 10);
}

TEST(failover_and_least_sessions)
{
	struct gate_backend_board b;
	struct gate_backend_list l;
	struct gate_backend_rule r = rule;
	unsigned order[GATE_BACKENDS_MAX];

	setup(&b, &l, "127.0.0.1:25, 127.0.0.2:25");
	r.policy = GBP_FAILOVER;
	for (int i = 0; i < 3; i++) {
		EXPECT_INT(gate_backends_plan(&b, &l, &r, order), 2);
		EXPECT_INT(order[0], 0);
	}
	r.policy = GBP_LEAST_SESSIONS;
	gate_backends_hold(&b, 7, l.v[0].slot);		/* holder 7 on .1 */
	for (int i = 0; i < 3; i++) {
		EXPECT_INT(gate_backends_plan(&b, &l, &r, order), 2);
		EXPECT_INT(order[0], 1);
	}
	gate_backends_hold(&b, 3, l.v[1].slot);
	gate_backends_hold(&b, 5, l.v[1].slot);		/* two on .2: .1 first */
	EXPECT_INT(b.holders, 8);
	for (int i = 0; i < 3; i++) {
		EXPECT_INT(gate_backends_plan(&b, &l, &r, order), 2);
		EXPECT_INT(order[0], 0);
	}
	/* holder 5 reaped (the master releases it), 7 and 3 released: ties */
	gate_backends_release(&b, 5);
	gate_backends_release(&b, 7);
	gate_backends_release(&b, 3);
	int first0 = 0;
	for (int i = 0; i < 4; i++) {
		EXPECT_INT(gate_backends_plan(&b, &l, &r, order), 2);
		first0 += order[0] == 0;
	}
	EXPECT_INT(first0, 2);
}

TEST(health_backoff)
{
	struct gate_backend_board b;
	struct gate_backend_list l;
	unsigned order[GATE_BACKENDS_MAX];

	setup(&b, &l, "127.0.0.1:25, 127.0.0.2:25");
	gate_backends_result(&b, &l.v[1], &rule, 0);
	EXPECT_INT(gate_backends_plan(&b, &l, &rule, order), 2);	/* 1 < fail_max */
	gate_backends_result(&b, &l.v[1], &rule, 0);
	EXPECT_INT(b.v[l.v[1].slot].down, 1);
	for (int i = 0; i < 4; i++) {	/* skipped: only .1 */
		EXPECT_INT(gate_backends_plan(&b, &l, &rule, order), 1);
		EXPECT_INT(order[0], 0);
	}
	fake_now += 10001;		/* back-off over: tried again */
	EXPECT_INT(gate_backends_plan(&b, &l, &rule, order), 2);
	gate_backends_result(&b, &l.v[1], &rule, 0);	/* fails: 20 s now */
	EXPECT_INT(b.v[l.v[1].slot].backoff_ms, 20000);
	fake_now += 20001;
	gate_backends_result(&b, &l.v[1], &rule, 0);	/* 40 s, capped at 30 */
	EXPECT_INT(b.v[l.v[1].slot].backoff_ms, 30000);
	/* both down: the one whose back-off ends first is still tried */
	gate_backends_result(&b, &l.v[0], &rule, 0);
	gate_backends_result(&b, &l.v[0], &rule, 0);
	EXPECT_INT(gate_backends_plan(&b, &l, &rule, order), 1);
	EXPECT_INT(order[0], 0);
	fake_now += 30001;
	gate_backends_result(&b, &l.v[1], &rule, 1);	/* up: back-off reset */
	EXPECT_INT(b.v[l.v[1].slot].down, 0);
	EXPECT_INT(b.v[l.v[1].slot].fails, 0);
	EXPECT_INT(b.v[l.v[1].slot].backoff_ms, 0);
	/* every try was counted for its address (the connects metric) */
	EXPECT_INT(tries[l.v[1].slot][1], 4);
	EXPECT_INT(tries[l.v[1].slot][0], 1);
	EXPECT_INT(tries[l.v[0].slot][1], 2);
}

TEST(bind_keeps_slots)
{
	struct gate_backend_board b;
	struct gate_backend_list l, l2;
	const char *why = NULL;

	setup(&b, &l, "127.0.0.1:25, 127.0.0.2:25");
	EXPECT_INT(gate_backends_parse("127.0.0.3:25, 127.0.0.2:25", ',', &l2, &why), 0);
	gate_backends_bind(&b, &l2);
	EXPECT_INT(l2.v[1].slot, l.v[1].slot);	/* a reload keeps an address's health */
	EXPECT(l2.v[0].slot != l.v[0].slot);
}

int
main(void)
{
	RUN(parse);
	RUN(round_robin_spreads);
	RUN(failover_and_least_sessions);
	RUN(health_backoff);
	RUN(bind_keeps_slots);
	return unit_done();
}
