package kafka_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/sink/kafka"
)

// TestKafkaSinkTransactionalReplay: a transactional writer commits rows of
// input offsets 0..9; a writer opened for the same task afterwards (a
// restart) fences the first one and is handed a replay of 0..14 plus an
// uncommitted bundle of the first writer: read_committed, the topic holds
// each of 0..14 once, and the fenced writer can commit nothing more.
func TestKafkaSinkTransactionalReplay(t *testing.T) {
	ctx := t.Context()
	broker := cluster(t)
	const topic = "denied.txn"
	task := engine.TaskID{Topic: "in", Partition: 0}
	s, err := kafka.New(ctx, kafka.Config{Topic: topic, Transactional: true}, schema(), engine.SinkEnv{Job: "j", Pipeline: "p", Name: "kafka/0"},
		kafka.WithClientOpts(kgo.SeedBrokers(broker), kgo.AllowAutoTopicCreation()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	row := engine.NewRow(4)
	write := func(w engine.Writer, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			fill(row, i)
			row.Origin = engine.Origin{Task: task, Offset: int64(i)}
			if err := w.Write(row); err != nil {
				t.Fatal(err)
			}
		}
	}
	zombie, err := s.Open(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	write(zombie, 0, 10)
	if err := zombie.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(zombie, 10, 12) // in flight when the task moves

	w, err := s.Open(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	if err := zombie.Flush(ctx); err == nil {
		t.Error("the fenced writer committed a transaction")
	}
	zombie.Close(ctx)
	write(w, 0, 15) // the replay from an older checkpoint
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close(ctx)

	bin, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not found: install it with `%s`", install)
	}
	out, err := exec.Command(bin, "-b", broker, "-C", "-t", topic, "-e", "-q", "-X", "isolation.level=read_committed", "-f", `%s\n`).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	seen := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		id, _, _ := strings.Cut(strings.TrimPrefix(l, `{"id":`), ",")
		seen[id]++
	}
	for i := range 15 {
		if n := seen[strconv.Itoa(i)]; n != 1 {
			t.Errorf("row %d committed %d times; read_committed output:\n%s", i, n, out)
		}
	}
	if len(seen) != 15 {
		t.Errorf("%d distinct rows committed, want 15:\n%s", len(seen), out)
	}
	if g := s.MarkerGroup(); g != "j.p.kafka/0" {
		t.Errorf("marker group %q", g)
	}
}
