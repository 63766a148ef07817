package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Unmarshaler is implemented by types that decode themselves from a node.
type Unmarshaler interface {
	UnmarshalNode(n *yaml.Node) error
}

// decoder decodes YAML nodes into Go values strictly: an unknown key, a value
// of the wrong type or a missing required key is an error at its position. It
// collects every error instead of stopping at the first.
type decoder struct {
	file   string
	raw    []string // the file's lines, for positions inside block scalars
	lookup func(string) (string, bool)
	errs   Errors
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Col: n.Column, Msg: fmt.Sprintf(format, args...)})
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	posType      = reflect.TypeOf(Pos{})
	nodeType     = reflect.TypeOf(yaml.Node{})
	pluginType   = reflect.TypeOf(Plugin{})
	textType     = reflect.TypeOf(Text{})
	unmarshaler  = reflect.TypeOf((*Unmarshaler)(nil)).Elem()
	varPattern   = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
)

// scalar returns the node's value with ${NAME} replaced from the environment.
func (d *decoder) scalar(n *yaml.Node) (string, bool) {
	if !strings.Contains(n.Value, "${") || d.lookup == nil {
		return n.Value, true
	}
	ok := true
	out := varPattern.ReplaceAllStringFunc(n.Value, func(m string) string {
		name := m[2 : len(m)-1]
		v, found := d.lookup(name)
		if !found {
			d.errorf(n, "environment variable %s is not set", name)
			ok = false
		}
		return v
	})
	return out, ok
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch v.Type() {
	case nodeType:
		v.Set(reflect.ValueOf(*n))
		return
	case pluginType:
		p := v.Addr().Interface().(*Plugin)
		if err := p.UnmarshalNode(n); err != nil {
			e := err.(*Error)
			e.File = d.file
			d.errs = append(d.errs, e)
		}
		p.Pos.File, p.NamePos.File, p.d = d.file, d.file, d
		return
	case textType:
		t := v.Addr().Interface().(*Text)
		if err := t.UnmarshalNode(n); err != nil {
			d.errorf(n, "%s", err.(*Error).Msg)
			return
		}
		if s, ok := d.scalar(n); ok {
			t.Value = s
		}
		t.Pos.File = d.file
		t.locate(n.Style, d.raw)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshaler) {
		if err := v.Addr().Interface().(Unmarshaler).UnmarshalNode(n); err != nil {
			if e, ok := err.(*Error); ok {
				d.errs = append(d.errs, e)
			} else {
				d.errorf(n, "%v", err)
			}
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value: the key is as good as absent
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem())
	case reflect.Struct:
		d.decodeStruct(n, v)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := reflect.New(v.Type().Key()).Elem()
			d.decode(n.Content[i], k)
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], e)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.String:
		if !d.expectScalar(n) {
			return
		}
		s, _ := d.scalar(n)
		v.SetString(s)
	case reflect.Bool:
		if !d.expectScalar(n) {
			return
		}
		s, _ := d.scalar(n)
		b, err := strconv.ParseBool(s)
		if err != nil {
			d.errorf(n, "expected true or false, got %q", s)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		if !d.expectScalar(n) {
			return
		}
		s, _ := d.scalar(n)
		if v.Type() == durationType {
			dur, err := time.ParseDuration(s)
			if err != nil {
				d.errorf(n, "expected a duration such as 10s or 1m30s, got %q", s)
				return
			}
			v.SetInt(int64(dur))
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.errorf(n, "expected an integer, got %q", s)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		if !d.expectScalar(n) {
			return
		}
		s, _ := d.scalar(n)
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.errorf(n, "expected a number, got %q", s)
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, "cannot decode into %s", v.Type())
	}
}

func (d *decoder) expectScalar(n *yaml.Node) bool {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "expected a single value, got %s", describe(n))
		return false
	}
	return true
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

type fieldInfo struct {
	index    []int // for reflect.Value.FieldByIndex: inline fields are nested
	required bool
}

// structFields lists the keys of a struct type: its exported fields by their
// yaml tag (or lower-cased name), and the keys of embedded structs tagged
// `yaml:",inline"`, such as settings that several sinks' Configs share. An
// inline struct's own Pos field is not set: positions are the outer
// struct's.
func structFields(t reflect.Type, prefix []int, fields map[string]fieldInfo, known *[]string) (posIndex int) {
	posIndex = -1
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		index := append(slices.Clip(prefix), i)
		if f.Type == posType && f.Name == "Pos" {
			posIndex = i
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.Anonymous && f.Type.Kind() == reflect.Struct && name == "" && opts == "inline" {
			structFields(f.Type, index, fields, known)
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = fieldInfo{index: index, required: f.Tag.Get("required") == "true"}
		*known = append(*known, name)
	}
	return posIndex
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "expected a mapping, got %s", describe(n))
		return
	}
	fields := make(map[string]fieldInfo, v.NumField())
	var known []string
	posIndex := structFields(v.Type(), nil, fields, &known)
	seen := make(map[string]bool, len(n.Content)/2)
	keys := make(map[string][2]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		fi, ok := fields[k.Value]
		if !ok {
			d.errorf(k, "unknown key %q (expected one of: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		if seen[k.Value] {
			d.errorf(k, "key %q appears twice", k.Value)
			continue
		}
		seen[k.Value] = true
		keys[k.Value] = [2]int{val.Line, val.Column}
		d.decode(val, v.FieldByIndex(fi.index))
	}
	for _, name := range known {
		if fields[name].required && !seen[name] {
			d.errorf(n, "missing required key %q", name)
		}
	}
	if posIndex >= 0 {
		v.Field(posIndex).Set(reflect.ValueOf(Pos{File: d.file, Line: n.Line, Col: n.Column, keys: keys}))
	}
}

// Plugin is a mapping with one key naming a kind of component and holding its
// settings, such as `file: {path: out.jsonl}` under sinks, and optionally a
// `name:` beside it. The component's package decodes the settings into its
// own Config with Decode.
type Plugin struct {
	Pos  Pos
	Kind string
	// Name is the optional `name:` given beside the kind ("" when absent);
	// NamePos is where it stands.
	Name    string
	NamePos Pos
	node    *yaml.Node
	d       *decoder
}

var pluginName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9_.-]{0,62})$`)

// UnmarshalNode implements Unmarshaler.
func (p *Plugin) UnmarshalNode(n *yaml.Node) error {
	p.Pos = Pos{Line: n.Line, Col: n.Column}
	if n.Kind != yaml.MappingNode || len(n.Content) < 2 || len(n.Content) > 4 {
		return &Error{Line: n.Line, Col: n.Column, Msg: "expected a mapping with one key naming the kind (and an optional name)"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value != "name" {
			if p.node != nil {
				return &Error{Line: k.Line, Col: k.Column, Msg: fmt.Sprintf("expected one key naming the kind, got %q and %q", p.Kind, k.Value)}
			}
			p.Kind, p.node = k.Value, v
			continue
		}
		p.NamePos = Pos{Line: v.Line, Col: v.Column}
		if v.Kind != yaml.ScalarNode || !pluginName.MatchString(v.Value) {
			return &Error{Line: v.Line, Col: v.Column, Msg: fmt.Sprintf("name %q must be a simple identifier: letters, digits, '_', '.' and '-', at most 63 characters", v.Value)}
		}
		p.Name = v.Value
	}
	if p.node == nil {
		return &Error{Line: n.Line, Col: n.Column, Msg: "expected a key naming the kind beside name"}
	}
	return nil
}

// Decode decodes the plugin's settings strictly into v, a pointer to a struct.
// The errors carry positions in the job file.
func (p *Plugin) Decode(v any) error {
	if p.node == nil {
		return nil
	}
	d := &decoder{file: p.Pos.File, raw: p.d.raw, lookup: p.d.lookup}
	d.decode(p.node, reflect.ValueOf(v).Elem())
	if len(d.errs) > 0 {
		return d.errs.sorted()
	}
	return nil
}

// Text is a string value that remembers where each of its characters stands in
// the job file, so that errors inside it (SQL syntax errors) can be reported at
// the file's line and column.
type Text struct {
	Value string
	Pos   Pos
	// lines maps the i-th line of Value to its line and first column in the file.
	lines [][2]int
}

// UnmarshalNode implements Unmarshaler.
func (t *Text) UnmarshalNode(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &Error{Line: n.Line, Col: n.Column, Msg: fmt.Sprintf("expected text, got %s", describe(n))}
	}
	t.Value = n.Value
	t.Pos = Pos{Line: n.Line, Col: n.Column}
	return nil
}

// At returns the file position of the byte at offset in Value. Positions
// inside block scalars (`sql: |`) and single-line values are exact; inside
// folded or multi-line quoted values they are the best estimate.
func (t *Text) At(offset int) Pos {
	// An error at the end of the text (an unfinished statement) is reported
	// after its last token, not on the line after a block scalar.
	offset = min(offset, len(strings.TrimRight(t.Value, " \t\r\n")))
	line := strings.Count(t.Value[:min(max(offset, 0), len(t.Value))], "\n")
	col := offset - (strings.LastIndexByte(t.Value[:min(max(offset, 0), len(t.Value))], '\n') + 1)
	if line < len(t.lines) {
		return Pos{File: t.Pos.File, Line: t.lines[line][0], Col: t.lines[line][1] + col}
	}
	return Pos{File: t.Pos.File, Line: t.Pos.Line + line, Col: t.Pos.Col + col}
}

// locate fills the line map of a Text from the raw file lines.
func (t *Text) locate(style yaml.Style, raw []string) {
	t.lines = t.lines[:0]
	switch {
	case style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// The content starts on the line after the indicator, at the
		// indentation of its first non-empty line.
		indent := -1
		ln := t.Pos.Line // 1-based line of the indicator; content from the next
		for i := ln; i < len(raw); i++ {
			if strings.TrimSpace(raw[i]) == "" {
				continue
			}
			indent = len(raw[i]) - len(strings.TrimLeft(raw[i], " "))
			break
		}
		if indent < 0 {
			return
		}
		for i, row := 0, ln; i <= strings.Count(t.Value, "\n") && row < len(raw)+1; i, row = i+1, row+1 {
			t.lines = append(t.lines, [2]int{row + 1, indent + 1})
		}
	case style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		t.lines = append(t.lines, [2]int{t.Pos.Line, t.Pos.Col + 1})
	default:
		t.lines = append(t.lines, [2]int{t.Pos.Line, t.Pos.Col})
	}
}

// ReadFile reads a job file of at most MaxFileBytes. It reads no more than
// that from anything (a FIFO, /dev/zero), so that a wrong path fails at once
// instead of growing without bound.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > MaxFileBytes {
		return nil, Errors{{File: path, Line: 1, Col: 1, Msg: fmt.Sprintf("the job file is larger than %d MiB (%d bytes)", MaxFileBytes>>20, fi.Size())}}
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	if len(b) > MaxFileBytes {
		return nil, Errors{{File: path, Line: 1, Col: 1, Msg: fmt.Sprintf("the job file is larger than %d MiB; is it a regular file?", MaxFileBytes>>20)}}
	}
	return b, nil
}

// parseYAML parses a file's contents into its document node. Too large a
// file, a syntax error or an empty file is an Errors at its position.
// What names the file in those errors ("job file").
func parseYAML(path, what string, data []byte) (*yaml.Node, error) {
	if len(data) > MaxFileBytes {
		return nil, Errors{{File: path, Line: 1, Col: 1, Msg: fmt.Sprintf("the %s is larger than %d MiB", what, MaxFileBytes>>20)}}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Errors{yamlError(path, err, data)}
	}
	if len(root.Content) == 0 {
		return nil, Errors{{File: path, Line: 1, Col: 1, Msg: "the " + what + " is empty"}}
	}
	return &root, nil
}

// Unmarshal decodes data, the contents of the file named path, into v (a
// pointer to a struct) with the rules of a job file: an unknown key, a value
// of the wrong type or a missing required key (a `required:"true"` field tag)
// is an Error at its FILE:LINE:COL, and the error, when not nil, is an Errors
// listing all of them. A field of type Pos named Pos is set to where its
// mapping stands, so that the caller's checks can report positions too.
// ${NAME} is left as written: only job files expand the environment. It is
// how other files sluice reads (the coordinator's) get the job file's
// strictness.
func Unmarshal(path string, data []byte, v any) error {
	root, err := parseYAML(path, "file", data)
	if err != nil {
		return err
	}
	d := &decoder{file: path, raw: strings.Split(string(data), "\n")}
	d.decode(root, reflect.ValueOf(v).Elem())
	if len(d.errs) > 0 {
		return d.errs.sorted()
	}
	return nil
}
