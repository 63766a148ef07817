package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"github.com/linkedin/goavro/v2"
	"google.golang.org/api/iterator"

	"github.com/sluicehq/sluice/sink/object/objecttest"
)

// objectFormats are the formats every object sink test writes, one sink each.
var objectFormats = []string{"json", "csv", "avro"}

// finalObject is a finalized object as a test reads it back.
type finalObject struct {
	name  string
	size  int
	close string // the sluice-close metadata: size, age or close
	seqs  []int64
}

// parseObject reads the sequence numbers of an object's rows with the
// format's own reader (goavro for OCF), failing on anything that is not a
// valid whole object.
func parseObject(t *testing.T, format, name string, b []byte) []int64 {
	t.Helper()
	var seqs []int64
	switch format {
	case "json":
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var row struct {
				SequenceNumber *int64 `json:"sequence_number"`
			}
			if err := json.Unmarshal(sc.Bytes(), &row); err != nil || row.SequenceNumber == nil {
				t.Fatalf("object %s: line %q: %v", name, sc.Text(), err)
			}
			seqs = append(seqs, *row.SequenceNumber)
		}
	case "csv":
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil || len(recs) < 2 || recs[0][0] != "sequence_number" {
			t.Fatalf("object %s: csv: %v (%d records)", name, err, len(recs))
		}
		for _, r := range recs[1:] {
			seq, err := strconv.ParseInt(r[0], 10, 64)
			if err != nil {
				t.Fatalf("object %s: csv record %q: %v", name, r, err)
			}
			seqs = append(seqs, seq)
		}
	case "avro":
		r, err := goavro.NewOCFReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("object %s: %v", name, err)
		}
		for r.Scan() {
			v, err := r.Read()
			if err != nil {
				t.Fatalf("object %s: %v", name, err)
			}
			seqs = append(seqs, v.(map[string]any)["sequence_number"].(int64))
		}
		if r.Err() != nil {
			t.Fatalf("object %s: %v", name, r.Err())
		}
	}
	return seqs
}

// gcsObjects reads every finalized object under prefix.
func gcsObjects(t *testing.T, c *storage.Client, bucket, prefix, format string) []finalObject {
	t.Helper()
	ctx := context.Background()
	var out []finalObject
	it := c.Bucket(bucket).Objects(ctx, &storage.Query{Prefix: prefix})
	for {
		a, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Bucket(bucket).Object(a.Name).NewReader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, finalObject{name: a.Name, size: len(b), close: a.Metadata["sluice-close"], seqs: parseObject(t, format, a.Name, b)})
	}
	return out
}

// checkObjects requires every produced record exactly once across objs, and
// objects within max bytes: each one at most maxBytes, and each one closed
// for its size at least half full. It returns how many were closed by age.
func (c *cluster) checkObjects(format string, objs []finalObject, maxBytes int) (aged int) {
	c.t.Helper()
	seen := map[int64]int{}
	for _, o := range objs {
		for _, s := range o.seqs {
			seen[s]++
		}
		if o.size > maxBytes {
			c.t.Errorf("%s object %s: %d bytes, over max_object_bytes %d", format, o.name, o.size, maxBytes)
		}
		switch o.close {
		case "size":
			if o.size < maxBytes/2 {
				c.t.Errorf("%s object %s closed for its size at %d bytes of %d", format, o.name, o.size, maxBytes)
			}
		case "age":
			aged++
		}
	}
	if missing, dup := c.tally(seen); missing > 0 || dup > 0 {
		c.t.Errorf("%s objects: %d of %d records missing, %d duplicated", format, missing, c.produced(), dup)
	}
	return aged
}

// waitCheckpoint waits until the worker has saved a checkpoint, so that a kill
// after it tests resumption rather than a first start.
func (c *cluster) waitCheckpoint(w *worker) {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		found := false
		filepath.WalkDir(filepath.Join(c.dir, "ckpt"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".ckpt") {
				found = true
			}
			return nil
		})
		if found {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("no checkpoint after a minute; logs:\n%s", w.logs.String())
}

// objectBackend is one object store the SIGKILL tests write to.
type objectBackend struct {
	name string
	// sink is the YAML of its sink in format under prefix.
	sink func(prefix, format string) string
	// list reads the finalized objects under prefix.
	list func(t *testing.T, prefix, format string) []finalObject
}

// runObjectSIGKILL runs the sluice binary with one sink per backend and
// format, SIGKILLs it four times while records flow, and then lets the
// stream go quiet: max_object_age must finalize the last objects without a
// drain, every record must be in each sink's finalized objects exactly once,
// and objects must respect max_object_bytes.
func runObjectSIGKILL(t *testing.T, maxBytes int, backends ...objectBackend) {
	var sinks string
	for _, b := range backends {
		for _, f := range objectFormats {
			sinks += "      - " + b.sink(b.name+"-"+f+"/", f) + "\n"
		}
	}
	c := newClusterSinks(t, 4, "1s", sinks)
	rnd := rand.New(rand.NewSource(12))
	stopProducing := c.produceEvery(100, 25*time.Millisecond)
	for i := range 4 {
		w := c.start("obj-0")
		if i == 0 {
			c.waitCheckpoint(w)
		}
		time.Sleep(time.Duration(1500+rnd.Intn(2000)) * time.Millisecond)
		c.kill(w)
	}
	stopProducing()
	w := c.start("obj-0")
	// No drain: the stream is quiet, and max_object_age alone must make the
	// last rows visible.
	deadline := time.Now().Add(2 * time.Minute)
	for _, b := range backends {
		for _, f := range objectFormats {
			for {
				n := 0
				for _, o := range b.list(t, b.name+"-"+f+"/", f) {
					n += len(o.seqs)
				}
				if n >= int(c.produced()) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s %s: %d rows of %d in finalized objects 2 minutes after the stream went quiet; logs:\n%s", b.name, f, n, c.produced(), w.logs.String())
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	time.Sleep(500 * time.Millisecond) // room for a duplicate to show up
	for _, b := range backends {
		for _, f := range objectFormats {
			objs := b.list(t, b.name+"-"+f+"/", f)
			aged := c.checkObjects(b.name+" "+f, objs, maxBytes)
			if aged == 0 {
				t.Errorf("%s %s: no object was closed by max_object_age", b.name, f)
			}
			t.Logf("%s %s: %d records in %d objects (%d closed by age), none lost, none twice", b.name, f, c.produced(), len(objs), aged)
		}
	}
	c.drain(w)
	_, fileRows := c.sinkCounts()
	t.Logf("the at-least-once file sink beside them holds %d rows for %d records", fileRows, c.produced())
}

// TestGCSObjectRolling: runObjectSIGKILL with GCS sinks in each format
// (fake-gcs-server over HTTP behind the real client).
func TestGCSObjectRolling(t *testing.T) {
	srv, err := fakestorage.NewServerWithOptions(fakestorage.Options{Scheme: "http", Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: "export"})
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(srv.URL(), "http://"))
	reader, err := storage.NewClient(context.Background(), storage.WithJSONReads())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	const maxBytes = 32 << 10
	runObjectSIGKILL(t, maxBytes, objectBackend{
		name: "gcs",
		sink: func(prefix, format string) string {
			return fmt.Sprintf("gcs: {bucket: export, prefix: %s, format: %s, max_object_bytes: %d, max_object_age: 3s}", prefix, format, maxBytes)
		},
		list: func(t *testing.T, prefix, format string) []finalObject {
			return gcsObjects(t, reader, "export", prefix, format)
		},
	})
}

// TestObjectSinksSIGKILL: runObjectSIGKILL with S3 sinks (gofakes3 behind
// aws-sdk-go-v2) and Azure Blob sinks (Azurite behind azblob) in each format.
func TestObjectSinksSIGKILL(t *testing.T) {
	endpoint, s3c := objecttest.StartS3(t, "export")
	az := objecttest.StartAzurite(t, "export")
	ctx := context.Background()
	const maxBytes = 32 << 10
	runObjectSIGKILL(t, maxBytes, objectBackend{
		name: "s3",
		sink: func(prefix, format string) string {
			return fmt.Sprintf("s3: {bucket: export, endpoint: %q, prefix: %s, format: %s, max_object_bytes: %d, max_object_age: 3s}", endpoint, prefix, format, maxBytes)
		},
		list: func(t *testing.T, prefix, format string) []finalObject {
			var out []finalObject
			p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String("export"), Prefix: aws.String(prefix)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range page.Contents {
					got, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("export"), Key: o.Key})
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(got.Body)
					got.Body.Close()
					out = append(out, finalObject{name: *o.Key, size: len(b), close: got.Metadata["sluice-close"], seqs: parseObject(t, format, *o.Key, b)})
				}
			}
			return out
		},
	}, objectBackend{
		name: "azblob",
		sink: func(prefix, format string) string {
			return fmt.Sprintf("azblob: {container: export, prefix: %s, format: %s, max_object_bytes: %d, max_object_age: 3s}", prefix, format, maxBytes)
		},
		list: func(t *testing.T, prefix, format string) []finalObject {
			var out []finalObject
			p := az.NewListBlobsFlatPager("export", &azblob.ListBlobsFlatOptions{Prefix: &prefix})
			for p.More() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, bi := range page.Segment.BlobItems {
					got, err := az.DownloadStream(ctx, "export", *bi.Name, nil)
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(got.Body)
					got.Body.Close()
					var reason string
					for k, v := range got.Metadata {
						if strings.EqualFold(k, "sluice_close") && v != nil {
							reason = *v
						}
					}
					out = append(out, finalObject{name: *bi.Name, size: len(b), close: reason, seqs: parseObject(t, format, *bi.Name, b)})
				}
			}
			return out
		},
	})
}
