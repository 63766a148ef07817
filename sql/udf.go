package sql

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/engine"
)

// Scalar are the Go types of the arguments and results of user functions:
// BOOLEAN, BIGINT, DOUBLE and strings (also bytes).
type Scalar interface {
	bool | int64 | float64 | string
}

// Registry holds user-defined functions, called from SQL by name
// (case-insensitive) and planned like built-ins: arguments are converted to
// the declared Go types at compile time and the function is called with
// typed values, never boxed. A function is strict: when an argument is NULL
// it is not called and the result is NULL; it returns ok=false to produce
// NULL itself. Functions must be safe for concurrent use and must not keep
// the strings they are given (they may alias the input batch).
//
// Register before compiling; a Registry is read, not written, by Compile and
// may then be shared by any number of programs.
type Registry struct {
	funcs map[string]udf
}

type udf struct {
	arity int
	bind  func(c *compiler, args []*expr) *expr
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{funcs: map[string]udf{}} }

func (r *Registry) lookup(name string) (udf, bool) {
	if r == nil {
		return udf{}, false
	}
	u, ok := r.funcs[name]
	return u, ok
}

func (r *Registry) add(name string, u udf) error {
	key := strings.ToLower(name)
	if key == "" || strings.ContainsAny(key, " .()`'\"") {
		return fmt.Errorf("sql: register %q: not a function name", name)
	}
	if _, ok := builtins()[key]; ok {
		return fmt.Errorf("sql: register %s: a built-in function has that name", name)
	}
	if _, ok := r.funcs[key]; ok {
		return fmt.Errorf("sql: register %s: already registered", name)
	}
	r.funcs[key] = u
	return nil
}

// Register1 registers a function of one argument.
func Register1[A, R Scalar](r *Registry, name string, f func(A) (R, bool)) error {
	return r.add(name, udf{arity: 1, bind: func(c *compiler, args []*expr) *expr {
		fa := argFn[A](c, args[0])
		return resultExpr[R](func(in, out *engine.Row) (R, bool, error) {
			a, ok, err := fa(in, out)
			if !ok {
				var zero R
				return zero, false, err
			}
			v, ok := f(a)
			return v, ok, nil
		})
	}})
}

// Register2 registers a function of two arguments.
func Register2[A, B, R Scalar](r *Registry, name string, f func(A, B) (R, bool)) error {
	return r.add(name, udf{arity: 2, bind: func(c *compiler, args []*expr) *expr {
		fa, fb := argFn[A](c, args[0]), argFn[B](c, args[1])
		return resultExpr[R](func(in, out *engine.Row) (R, bool, error) {
			var zero R
			a, ok, err := fa(in, out)
			if !ok {
				return zero, false, err
			}
			b, ok, err := fb(in, out)
			if !ok {
				return zero, false, err
			}
			v, ok := f(a, b)
			return v, ok, nil
		})
	}})
}

// Register3 registers a function of three arguments.
func Register3[A, B, C, R Scalar](r *Registry, name string, f func(A, B, C) (R, bool)) error {
	return r.add(name, udf{arity: 3, bind: func(cc *compiler, args []*expr) *expr {
		fa, fb, fc := argFn[A](cc, args[0]), argFn[B](cc, args[1]), argFn[C](cc, args[2])
		return resultExpr[R](func(in, out *engine.Row) (R, bool, error) {
			var zero R
			a, ok, err := fa(in, out)
			if !ok {
				return zero, false, err
			}
			b, ok, err := fb(in, out)
			if !ok {
				return zero, false, err
			}
			c, ok, err := fc(in, out)
			if !ok {
				return zero, false, err
			}
			v, ok := f(a, b, c)
			return v, ok, nil
		})
	}})
}

// argFn converts an argument to the Go type A, at compile time.
func argFn[A Scalar](c *compiler, e *expr) fn[A] {
	var zero A
	var f any
	switch any(zero).(type) {
	case bool:
		f = c.convert(e, tBool, 0).b
	case int64:
		f = c.convert(e, tInt, 0).i
	case float64:
		f = c.convert(e, tFloat, 0).f
	case string:
		f = c.convert(e, tString, 0).s
	}
	return f.(fn[A])
}

func resultExpr[R Scalar](f fn[R]) *expr {
	var zero R
	e := &expr{nullable: true}
	switch any(zero).(type) {
	case bool:
		e.t, e.b = tBool, any(f).(fn[bool])
	case int64:
		e.t, e.i = tInt, any(f).(fn[int64])
	case float64:
		e.t, e.f = tFloat, any(f).(fn[float64])
	case string:
		e.t, e.s = tString, any(f).(fn[string])
	}
	return e
}

func (u udf) plan(c *compiler, pos int, name string, args []*expr, text string) (*expr, error) {
	if len(args) != u.arity {
		return nil, c.errorf(pos, "%s takes %d argument(s), got %d", name, u.arity, len(args))
	}
	for _, a := range args {
		if a.t == tComposite {
			return nil, c.errorf(a.pos, "%s cannot take a record, array or map (%s)", name, a.text)
		}
	}
	e := u.bind(c, args)
	e.pos, e.text = pos, text
	return e, nil
}
