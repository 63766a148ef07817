package sql

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sluicehq/sluice/engine"
	"github.com/sluicehq/sluice/engine/enginetest"
)

// evalCases are run on the same seeded rows; their outputs are the golden
// file testdata/golden/<group>.txt.
var evalCases = map[string][]string{
	"core": {
		"SELECT * FROM input WHERE action <> 'ALLOW'",
		"SELECT input.* FROM input WHERE src_port = 443",
		"SELECT src_ip, dst_ip, app, bytes_sent + bytes_received AS bytes FROM input",
		"SELECT src_location.country, dst_location.region AS r, src_location FROM input",
		"SELECT 1, -2, 3.25, 1e3, 'str', x'4142', TRUE, FALSE, NULL, 0x10 FROM input WHERE src_port = 22",
		"SELECT session_id * 2 AS m, session_id - 7 AS s, repeat_count / 3 AS d, repeat_count DIV 3 AS q, repeat_count % 7 AS r, repeat_count MOD 0 AS z, repeat_count / 0 AS dz FROM input",
		"SELECT 1.5 + 2.25 AS dec, 1.5 * 2.25 AS decm, 7 / 2 AS div7, 1 + 0.5e0 AS f, '3' + 4 AS sf FROM input WHERE src_port = 80",
		"SELECT src_location.latitude + 1 AS lat1, risk_score * 2 AS rs2, -risk_score AS neg FROM input",
		"SELECT flags & 3 AS a, flags | 8 AS o, flags ^ 1 AS x, 1 << 4 AS sl, 256 >> 2 AS sr, ~0 AS t FROM input WHERE src_port = 80",
		"SELECT src_user IS NULL AS a, src_user IS NOT NULL AS b, is_threat IS TRUE AS c, risk_score > 0 IS NOT FALSE AS d, src_location IS NULL AS e FROM input",
		"SELECT repeat_count > 100 AND src_user IS NULL AS a, repeat_count > 100 OR src_user = 'abc' AS b, NOT (src_user = 'abc') AS c, src_user = 'abc' XOR is_threat AS d, NULL AND FALSE AS e, NULL OR TRUE AS f, NULL AND TRUE AS g FROM input",
		"SELECT app IN ('ssl', 'dns') AS a, action IN ('DENY', 'DROP') AS b, app NOT IN ('ssl', NULL) AS c, repeat_count IN (1, 2, repeat_count) AS d, src_user IN ('abc') AS e FROM input",
		"SELECT repeat_count BETWEEN 0 AND 500 AS a, repeat_count NOT BETWEEN 0 AND 500 AS b, src_user BETWEEN 'a' AND 'b' AS c FROM input",
		"SELECT app LIKE 'web%' AS a, app LIKE '%s%' AS b, app LIKE '_b_' AS c, serial LIKE 'x!_y%' ESCAPE '!' AS d, serial LIKE 'x\\_y\\%z' AS e, app NOT LIKE '%' AS f, src_user LIKE 'a%' AS g FROM input",
		"SELECT app REGEXP '^[a-z]+$' AS a, app RLIKE 'S' AS b, app NOT REGEXP 'b' AS c, REGEXP_LIKE(app, 'S', 'i') AS d FROM input",
		"SELECT CASE WHEN repeat_count < 0 THEN 'neg' WHEN repeat_count < 500 THEN 'small' ELSE 'big' END AS size, CASE action WHEN 'ALLOW' THEN 1 WHEN 'DENY' THEN 2.5 END AS code, CASE WHEN src_user IS NULL THEN NULL ELSE 1 END AS n FROM input",
		"SELECT COALESCE(src_user, dst_user, 'nobody') AS u, IFNULL(risk_score, -1) AS r, NULLIF(app, 'ssl') AS n, IF(is_threat, 'threat', 'ok') AS t, COALESCE(src_user, dst_user) AS maybe FROM input",
		"SELECT CAST(repeat_count AS CHAR) AS a, CAST('12abc' AS SIGNED) AS b, CAST('abc' AS SIGNED) AS c, CAST(risk_score AS DECIMAL(10,2)) AS d, CAST('2024-02-03 04:05:06' AS DATETIME) AS e, CAST('junk' AS DATE) AS f, CONVERT(2.7, SIGNED) AS g, CAST(receive_time AS DATE) AS h, CAST(receive_time AS CHAR) AS i FROM input",
		"SELECT ELEMENT_AT(tags, 1) AS t1, tags->'$[1]' AS t2, labels->>'$.env' AS env, ELEMENT_AT(labels, 'team') AS team, tags, labels FROM input",
	},
	"funcs": {
		"SELECT LOWER(app) AS l, UPPER(app) AS u, LENGTH(app) AS n, CHAR_LENGTH(app) AS cn, CONCAT(app, '-', src_port) AS c, CONCAT(src_user, 'x') AS cnull, CONCAT_WS('|', src_user, app, dst_user) AS ws FROM input",
		"SELECT SUBSTRING(app, 2) AS a, SUBSTRING(app, 2, 3) AS b, SUBSTR(app, -3) AS c, SUBSTRING(app FROM 1 FOR 2) AS d, LEFT(app, 3) AS e, RIGHT(app, 3) AS f, SUBSTRING(app, 0) AS g FROM input",
		"SELECT TRIM('  a b  ') AS a, LTRIM('  a ') AS b, RTRIM(' a  ') AS c, TRIM(BOTH 'x' FROM 'xxaxx') AS d, TRIM(LEADING 'x' FROM 'xxaxx') AS e, TRIM(TRAILING 'x' FROM 'xxaxx') AS f, REPLACE(app, 's', 'S') AS g FROM input WHERE src_port = 53",
		"SELECT LOCATE('b', app) AS a, LOCATE('b', app, 3) AS b, INSTR(app, 'l') AS c, SPLIT_PART(src_ip, '.', 2) AS d, SPLIT_PART(src_ip, '.', -1) AS e, SPLIT_PART(src_ip, '.', 9) AS f, SUBSTRING_INDEX(src_ip, '.', 2) AS g FROM input",
		"SELECT MD5(app) AS a, SHA1(app) AS b, SHA2(app, 256) AS c, CRC32(app) AS d, HASH64(app) AS e, HASH64(session_id) AS f, HASH64(session_id) % 100 < 50 AS sample FROM input",
		"SELECT UNIX_TIMESTAMP(receive_time) AS a, FROM_UNIXTIME(1700000000) AS b, DATE_FORMAT(receive_time, '%Y-%m-%d %H:%i:%s.%f %a %b %j %p') AS c, EXTRACT(HOUR FROM receive_time) AS d, EXTRACT(YEAR FROM receive_time) AS e, DATE(receive_time) AS f, FROM_UNIXTIME(1700000000, '%Y/%m') AS g FROM input",
		"SELECT TIMESTAMPDIFF(SECOND, session_start, receive_time) AS a, TIMESTAMPDIFF(MONTH, session_start, receive_time) AS b, TIMESTAMPDIFF(DAY, '2024-01-31', '2024-03-01') AS c, TIMESTAMPDIFF(MONTH, '2024-01-31', '2024-02-29') AS d, receive_time > '2024-06-01' AS e FROM input",
		`SELECT JSON_EXTRACT('{"a":{"b":[1,"two",null]},"c":"d"}', '$.a.b[1]') AS a, JSON_EXTRACT('{"c": "d\\"q"}', '$.c') AS b, JSON_UNQUOTE(JSON_EXTRACT('{"c": "d\\"q"}', '$.c')) AS c, JSON_EXTRACT('[1, {"x": [true]}]', '$[1].x') AS d, JSON_UNQUOTE('"x\\ny"') AS e, JSON_EXTRACT('{"a":1}', '$.zz') AS g FROM input WHERE src_port = 80`,
		"SELECT app->>'$.a' AS f FROM input WHERE src_port = 80",
		"SELECT INET_ATON(src_ip) AS a, INET_NTOA(INET_ATON(src_ip)) AS b, HEX(INET6_ATON(src_ip)) AS c FROM input",
		"SELECT src_ip, INET_ATON(src_ip) AS a, INET6_NTOA(INET6_ATON(src_ip)) AS b, CIDR_MATCH(src_ip, '10.0.0.0/8') AS c, CIDR_MATCH(src_ip, '10.0.0.0/8', '192.168.0.0/16', '2001:db8::/32') AS d, CIDR_MATCH(INET_ATON(src_ip), '10.0.0.0/8') AS e, CIDR_MATCH(src_ip, dst_ip) AS f FROM input",
		"SELECT ABS(-3) AS a, ABS(risk_score) AS b, FLOOR(2.5) AS c, CEIL(2.1) AS d, ROUND(2.567, 2) AS e, ROUND(risk_score) AS f, GREATEST(1, 5, 3) AS g, LEAST('b', 'a') AS h, MOD(10, 3) AS i FROM input",
	},
}

func TestEvalGolden(t *testing.T) {
	schema := trafficSchema(t)
	g := newGen(1)
	rows := make([]*engine.Row, 8)
	for i := range rows {
		rows[i] = g.row(schema)
	}
	for group, cases := range evalCases {
		t.Run(group, func(t *testing.T) {
			var b strings.Builder
			for _, q := range cases {
				fmt.Fprintf(&b, "== %s\n", q)
				p, err := Compile(q, schema)
				if err != nil {
					fmt.Fprintf(&b, "error: %v\n\n", err)
					continue
				}
				fmt.Fprintf(&b, "schema: %s\n", typeString(p.Output().Root))
				out := &engine.Row{}
				for i, in := range rows {
					keep, err := p.Eval(in, out)
					switch {
					case err != nil:
						fmt.Fprintf(&b, "%d: error: %v\n", i, err)
					case keep:
						fmt.Fprintf(&b, "%d: %s\n", i, render(p.Output(), out))
					}
				}
				b.WriteString("\n")
			}
			enginetest.Golden(t, filepath.Join("testdata", "golden", group+".txt"), []byte(b.String()))
		})
	}
}

func TestCompileErrors(t *testing.T) {
	schema := trafficSchema(t)
	tests := []struct {
		sql    string
		offset int // of the offending token
		msg    string
	}{
		{"SELECT nope FROM input", 7, "unknown column nope"},
		{"SELECT app,\n  src_ip, bogus_col FROM input", 22, "unknown column bogus_col"},
		{"SELECT app FROM input WHERE app", 28, "WHERE must be a boolean"},
		{"SELECT app FROM input WHERE nofunc(app)", 28, "unknown function NOFUNC"},
		{"SELECT LOWER(app, 1) FROM input", 7, "LOWER takes 1 argument"},
		{"SELECT app FROM input GROUP BY app", 22, "GROUP BY is not supported"},
		{"SELECT COUNT(*) FROM input", 7, "aggregate function COUNT"},
		{"SELECT app FROM input JOIN other", 22, "JOIN is not supported"},
		{"SELECT app FROM input WHERE app IN (SELECT 1)", 36, "subqueries are not supported"},
		{"SELECT app FROM other", 16, "unknown table other"},
		{"SELECT app FROM input ORDER BY app", 22, "ORDER BY is not supported"},
		{"SELECT tags[0] FROM input", 11, "syntax error near '['"},
		{"SELECT app FROM input WHERE", 27, "syntax error"},
		{"SELECT app FROM input WHERE app REGEXP '('", 39, "bad regular expression"},
		{"SELECT CIDR_MATCH(src_ip, '10.0.0.0/33') FROM input", 26, "bad CIDR"},
		{"SELECT app FROM input WHERE receive_time > 5", 41, "cannot compare"},
		{"SELECT app, app FROM input", 12, "duplicate output column app"},
		{"SELECT receive_time + 1 FROM input", 7, "arithmetic on a timestamp"},
		{"SELECT NOW() FROM input", 7, "NOW is not supported"},
		{"SELECT tags + 1 FROM input", 7, "cannot compute"},
		{"SELECT 9223372036854775807 + 1 FROM input", 7, "BIGINT value is out of range"},
		{"SELECT country FROM input", 7, "(did you mean src_location.country?)"},
		{"", 0, "empty SQL"},
		{"DELETE FROM input", 0, "only SELECT"},
	}
	for _, tt := range tests {
		t.Run(tt.sql, func(t *testing.T) {
			_, err := Compile(tt.sql, schema)
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Compile: %v, want *sql.Error", err)
			}
			if diff := cmp.Diff(tt.offset, se.Offset); diff != "" {
				t.Errorf("offset of %q (-want +got):\n%s", se.Msg, diff)
			}
			if !strings.Contains(se.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", se.Error(), tt.msg)
			}
		})
	}
}

func TestErrorLineCol(t *testing.T) {
	schema := trafficSchema(t)
	_, err := Compile("SELECT app\nFROM input\nWHERE  bogus = 1", schema)
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("Compile: %v", err)
	}
	got := [3]int{se.Offset, se.Line, se.Col}
	if diff := cmp.Diff([3]int{29, 3, 8}, got); diff != "" {
		t.Errorf("offset, line, col (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("sql 3:8: unknown column bogus", se.Error()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRuntimeError(t *testing.T) {
	schema := trafficSchema(t)
	p, err := Compile("SELECT session_id * 9223372036854775807 AS big FROM input", schema)
	if err != nil {
		t.Fatal(err)
	}
	in := engine.NewRow(schema.Width())
	col, _ := schema.Lookup("session_id")
	in.SetInt(col.Slot, 3)
	_, err = p.Eval(in, &engine.Row{})
	var ee *engine.EvalError
	if !errors.As(err, &ee) {
		t.Fatalf("Eval: %v, want *engine.EvalError", err)
	}
	if diff := cmp.Diff("session_id * 9223372036854775807", ee.Expr); diff != "" {
		t.Errorf("EvalError.Expr (-want +got):\n%s", diff)
	}
}
