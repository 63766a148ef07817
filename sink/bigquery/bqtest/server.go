package bqtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/bigquery/storage/apiv1/storagepb"
	"cloud.google.com/go/bigquery/storage/managedwriter"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"google.golang.org/grpc/credentials/insecure"
)

// Append describes one AppendRows request, for Server.Fail.
type Append struct {
	Stream string
	Offset int64 // -1 without an offset
	Rows   []*dynamicpb.Message
}

// Server is an in-process google.cloud.bigquery.storage.v1.BigQueryWrite.
type Server struct {
	storagepb.UnimplementedBigQueryWriteServer

	// Fail, when set, is called for every append before it is applied; a
	// non-nil error (a gRPC status error) is returned in-band instead.
	Fail func(a Append) error
	// Reject, when set, is called for every row; a non-empty reason rejects
	// the request with INVALID_ARGUMENT and a RowError for that row, as
	// BigQuery does for a row it cannot convert.
	Reject func(table string, row *dynamicpb.Message) string

	mu      sync.Mutex // guards everything below
	streams map[string]*stream
	order   []*stream
	columns map[string]map[string]bool // table → allowed top-level columns (lowercase); nil = any
	appends int
	lis     net.Listener
	srv     *grpc.Server
	seq     int
}

type stream struct {
	name, table string
	typ         storagepb.WriteStream_Type
	rows        []*dynamicpb.Message
	finalized   bool
	committed   bool
	flushed     int64 // buffered streams: rows visible
	desc        protoreflect.MessageDescriptor
}

// New returns a server with no tables: every table exists.
func New() *Server {
	return &Server{streams: make(map[string]*stream), columns: make(map[string]map[string]bool)}
}

// Start serves a new Server on a loopback port until the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := New()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("bqtest: listen: %v", err)
	}
	s.lis = lis
	s.srv = grpc.NewServer()
	storagepb.RegisterBigQueryWriteServer(s.srv, s)
	go func() { _ = s.srv.Serve(lis) }()
	tb.Cleanup(s.srv.Stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// Client returns a real managedwriter client connected to the server, closed
// when the test ends.
func (s *Server) Client(tb testing.TB, project string) *managedwriter.Client {
	tb.Helper()
	c, err := managedwriter.NewClient(context.Background(), project,
		option.WithEndpoint(s.Addr()), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		tb.Fatalf("bqtest: client: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// SetColumns declares the top-level columns of table: an append whose
// descriptor has another field is rejected with INVALID_ARGUMENT.
func (s *Server) SetColumns(table string, cols ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]bool)
	for _, c := range cols {
		m[strings.ToLower(c)] = true
	}
	s.columns[table] = m
}

// Rows returns the rows of table that BigQuery would show: those of
// committed and default streams, of committed pending streams and the flushed
// ones of buffered streams, in stream creation order.
func (s *Server) Rows(table string) []*dynamicpb.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*dynamicpb.Message
	for _, st := range s.order {
		if st.table != table {
			continue
		}
		switch st.typ {
		case storagepb.WriteStream_PENDING:
			if st.committed {
				out = append(out, st.rows...)
			}
		case storagepb.WriteStream_BUFFERED:
			out = append(out, st.rows[:st.flushed]...)
		default:
			out = append(out, st.rows...)
		}
	}
	return out
}

// Maps returns Rows as generic JSON values (protojson, proto field names;
// int64 values are JSON strings, as protojson writes them).
func (s *Server) Maps(tb testing.TB, table string) []map[string]any {
	tb.Helper()
	var out []map[string]any
	for _, r := range s.Rows(table) {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(r)
		if err != nil {
			tb.Fatalf("bqtest: %v", err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			tb.Fatalf("bqtest: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// Appends counts the AppendRows requests received.
func (s *Server) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// Descriptor returns the descriptor last sent for a stream of table.
func (s *Server) Descriptor(table string) protoreflect.MessageDescriptor {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.order) - 1; i >= 0; i-- {
		if st := s.order[i]; st.table == table && st.desc != nil {
			return st.desc
		}
	}
	return nil
}

func tableOf(name string) string {
	if i := strings.Index(name, "/streams/"); i >= 0 {
		return name[:i]
	}
	return name
}

// lookup returns the stream name, creating the _default stream on demand.
func (s *Server) lookup(name string) (*stream, error) {
	if st, ok := s.streams[name]; ok {
		return st, nil
	}
	if strings.HasSuffix(name, "/streams/_default") {
		st := &stream{name: name, table: tableOf(name), typ: storagepb.WriteStream_COMMITTED}
		s.streams[name] = st
		s.order = append(s.order, st)
		return st, nil
	}
	return nil, grpcstatus.Errorf(codes.NotFound, "stream %s not found", name)
}

func info(st *stream) *storagepb.WriteStream {
	return &storagepb.WriteStream{Name: st.name, Type: st.typ, CreateTime: timestamppb.Now(), WriteMode: storagepb.WriteStream_INSERT, Location: "us"}
}

// CreateWriteStream implements storagepb.BigQueryWriteServer.
func (s *Server) CreateWriteStream(ctx context.Context, req *storagepb.CreateWriteStreamRequest) (*storagepb.WriteStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	typ := req.GetWriteStream().GetType()
	if typ == storagepb.WriteStream_TYPE_UNSPECIFIED {
		return nil, grpcstatus.Error(codes.InvalidArgument, "stream type unspecified")
	}
	s.seq++
	st := &stream{name: fmt.Sprintf("%s/streams/s%04d", req.GetParent(), s.seq), table: req.GetParent(), typ: typ}
	s.streams[st.name] = st
	s.order = append(s.order, st)
	return info(st), nil
}

// GetWriteStream implements storagepb.BigQueryWriteServer; it answers for
// _default too.
func (s *Server) GetWriteStream(ctx context.Context, req *storagepb.GetWriteStreamRequest) (*storagepb.WriteStream, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookup(req.GetName())
	if err != nil {
		return nil, err
	}
	return info(st), nil
}

// FinalizeWriteStream implements storagepb.BigQueryWriteServer.
func (s *Server) FinalizeWriteStream(ctx context.Context, req *storagepb.FinalizeWriteStreamRequest) (*storagepb.FinalizeWriteStreamResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookup(req.GetName())
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(st.name, "/_default") {
		return nil, grpcstatus.Error(codes.InvalidArgument, "the default stream cannot be finalized")
	}
	st.finalized = true
	return &storagepb.FinalizeWriteStreamResponse{RowCount: int64(len(st.rows))}, nil
}

// BatchCommitWriteStreams implements storagepb.BigQueryWriteServer.
func (s *Server) BatchCommitWriteStreams(ctx context.Context, req *storagepb.BatchCommitWriteStreamsRequest) (*storagepb.BatchCommitWriteStreamsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sts []*stream
	for _, n := range req.GetWriteStreams() {
		st, err := s.lookup(n)
		if err != nil {
			return nil, err
		}
		if st.typ != storagepb.WriteStream_PENDING || !st.finalized || st.committed {
			return nil, grpcstatus.Errorf(codes.FailedPrecondition, "stream %s is not a finalized, uncommitted pending stream", n)
		}
		sts = append(sts, st)
	}
	for _, st := range sts {
		st.committed = true
	}
	return &storagepb.BatchCommitWriteStreamsResponse{CommitTime: timestamppb.Now()}, nil
}

// FlushRows implements storagepb.BigQueryWriteServer.
func (s *Server) FlushRows(ctx context.Context, req *storagepb.FlushRowsRequest) (*storagepb.FlushRowsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.lookup(req.GetWriteStream())
	if err != nil {
		return nil, err
	}
	if st.typ != storagepb.WriteStream_BUFFERED {
		return nil, grpcstatus.Error(codes.InvalidArgument, "flush is for buffered streams")
	}
	off := req.GetOffset().GetValue()
	if off >= int64(len(st.rows)) {
		return nil, grpcstatus.Errorf(codes.OutOfRange, "offset %d beyond the end %d", off, len(st.rows))
	}
	st.flushed = max(st.flushed, off+1)
	return &storagepb.FlushRowsResponse{Offset: off}, nil
}

// AppendRows implements storagepb.BigQueryWriteServer: one response per
// request, in order; errors about the data are in-band.
func (s *Server) AppendRows(srv storagepb.BigQueryWrite_AppendRowsServer) error {
	var name string
	var desc protoreflect.MessageDescriptor
	for {
		req, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if req.GetWriteStream() != "" {
			name = req.GetWriteStream()
		}
		pr := req.GetProtoRows()
		if ws := pr.GetWriterSchema(); ws != nil {
			d, err := messageDescriptor(ws.GetProtoDescriptor())
			if err != nil {
				return grpcstatus.Errorf(codes.InvalidArgument, "bad writer schema: %v", err)
			}
			desc = d
		}
		if name == "" || desc == nil {
			return grpcstatus.Error(codes.InvalidArgument, "the first request must name the stream and carry the writer schema")
		}
		resp := s.append(name, desc, req)
		resp.WriteStream = name
		if err := srv.Send(resp); err != nil {
			return err
		}
	}
}

func errResp(code codes.Code, format string, args ...any) *storagepb.AppendRowsResponse {
	return &storagepb.AppendRowsResponse{Response: &storagepb.AppendRowsResponse_Error{
		Error: &status.Status{Code: int32(code), Message: fmt.Sprintf(format, args...)}}}
}

func (s *Server) append(name string, desc protoreflect.MessageDescriptor, req *storagepb.AppendRowsRequest) *storagepb.AppendRowsResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appends++
	st, err := s.lookup(name)
	if err != nil {
		return errResp(codes.NotFound, "%v", err)
	}
	if st.finalized {
		return errResp(codes.InvalidArgument, "stream %s is finalized", name)
	}
	st.desc = desc
	if cols := s.columns[st.table]; cols != nil {
		fs := desc.Fields()
		for i := 0; i < fs.Len(); i++ {
			if !cols[strings.ToLower(string(fs.Get(i).Name()))] {
				return errResp(codes.InvalidArgument, "Input schema has more fields than BigQuery schema, extra fields: '%s'", fs.Get(i).Name())
			}
		}
	}
	var rows []*dynamicpb.Message
	var rowErrs []*storagepb.RowError
	for i, b := range req.GetProtoRows().GetRows().GetSerializedRows() {
		m := dynamicpb.NewMessage(desc)
		if err := proto.Unmarshal(b, m); err != nil {
			rowErrs = append(rowErrs, &storagepb.RowError{Index: int64(i), Code: storagepb.RowError_FIELDS_ERROR, Message: err.Error()})
			continue
		}
		if s.Reject != nil {
			if why := s.Reject(st.table, m); why != "" {
				rowErrs = append(rowErrs, &storagepb.RowError{Index: int64(i), Code: storagepb.RowError_FIELDS_ERROR, Message: why})
				continue
			}
		}
		rows = append(rows, m)
	}
	off := int64(-1)
	if req.GetOffset() != nil {
		off = req.GetOffset().GetValue()
	}
	if s.Fail != nil {
		if err := s.Fail(Append{Stream: name, Offset: off, Rows: rows}); err != nil {
			st := grpcstatus.Convert(err)
			return errResp(st.Code(), "%s", st.Message())
		}
	}
	if len(rowErrs) > 0 {
		r := errResp(codes.InvalidArgument, "Errors found while processing rows")
		r.RowErrors = rowErrs
		return r
	}
	end := int64(len(st.rows))
	if off >= 0 {
		if strings.HasSuffix(name, "/_default") {
			return errResp(codes.InvalidArgument, "offsets are not supported on the default stream")
		}
		switch {
		case off < end:
			return errResp(codes.AlreadyExists, "offset %d already exists, the end is %d", off, end)
		case off > end:
			return errResp(codes.OutOfRange, "offset %d is beyond the end %d", off, end)
		}
	}
	st.rows = append(st.rows, rows...)
	resp := &storagepb.AppendRowsResponse{Response: &storagepb.AppendRowsResponse_AppendResult_{AppendResult: &storagepb.AppendRowsResponse_AppendResult{}}}
	if !strings.HasSuffix(name, "/_default") {
		resp.GetAppendResult().Offset = wrapperspb.Int64(end)
	}
	return resp
}

// messageDescriptor resolves a self-contained DescriptorProto, as the
// Storage Write API receives it.
func messageDescriptor(dp *descriptorpb.DescriptorProto) (protoreflect.MessageDescriptor, error) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("bqtest_writer_schema.proto"),
		Syntax:      proto.String("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{dp},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		return nil, err
	}
	return fd.Messages().Get(0), nil
}
