package mysql

import (
	"io"
	"strings"
	"testing"
)

const sampleDump = sandboxLine + ` 
-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB
--
-- Dumping data for table ` + "`a`" + `
--

LOCK TABLES ` + "`a`" + ` WRITE;
INSERT INTO ` + "`a`" + ` VALUES
(1,'x\ny\'z;('),
(2,NULL),(3,'))((''');
INSERT INTO ` + "`a`" + ` VALUES (4,0x28293B);
UNLOCK TABLES;

--
-- Dumping data for table ` + "`we``ird`" + `
--

LOCK TABLES ` + "`we``ird`" + ` WRITE;
INSERT INTO ` + "`we``ird`" + ` (` + "`c)ol`, `Values`" + `) VALUES (1,2);
UNLOCK TABLES;

--
-- Dumping data for table ` + "`empty`" + `
--

LOCK TABLES ` + "`empty`" + ` WRITE;
UNLOCK TABLES;
DELIMITER ;;
/*!50003 CREATE*/ /*!50003 TRIGGER tr AFTER INSERT ON a FOR EACH ROW
INSERT INTO ` + "`a`" + ` VALUES (9,9),(10,10) */;;
DELIMITER ;

-- Dump completed
`

func TestCounter(t *testing.T) {
	for _, chunk := range []int{1, 2, 3, 7, 64, 1 << 20} {
		c := newCounter()
		s := sampleDump
		for len(s) > 0 {
			n := min(chunk, len(s))
			c.Write([]byte(s[:n]))
			s = s[n:]
		}
		if err := c.check(); err != nil {
			t.Fatalf("chunk %d: %v", chunk, err)
		}
		want := map[string]int64{"`a`": 4, "`we``ird`": 1, "`empty`": 0}
		if len(c.rows) != len(want) {
			t.Errorf("chunk %d: rows %v, want %v", chunk, c.rows, want)
		}
		for k, v := range want {
			if c.rows[k] != v {
				t.Errorf("chunk %d: rows[%s] = %d, want %d", chunk, k, c.rows[k], v)
			}
		}
	}
	// A cut dump is not a whole one.
	c := newCounter()
	c.Write([]byte(sampleDump[:strings.Index(sampleDump, "(2,NULL)")]))
	if err := c.check(); err == nil {
		t.Error("cut dump: no error")
	}
	c = newCounter()
	c.Write([]byte(strings.Replace(sampleDump, "-- Dump completed", "", 1)))
	if err := c.check(); err == nil {
		t.Error("dump without trailer: no error")
	}
	if q, err := unquote("`we``ird`"); err != nil || q != "we`ird" {
		t.Errorf("unquote = %q, %v", q, err)
	}
}

func TestWithoutSandboxLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{sandboxLine + " \nSELECT 1;\n", "SELECT 1;\n"},
		{sandboxLine + "\nSELECT 1;\n", "SELECT 1;\n"},
		{sandboxLine + "\n", ""},
		{sandboxLine, ""},
		{sandboxLine + " SELECT 1;\n", sandboxLine + " SELECT 1;\n"},
		{"SELECT 1;\n" + sandboxLine + "\n", "SELECT 1;\n" + sandboxLine + "\n"},
		{"", ""},
	} {
		got, err := io.ReadAll(withoutSandboxLine(strings.NewReader(tc.in)))
		if err != nil || string(got) != tc.want {
			t.Errorf("withoutSandboxLine(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestOptionValue(t *testing.T) {
	if got, want := optionValue("a\"b'c#d\\e f\n"), `"a"b'c#d\\e f\n"`; got != want {
		t.Errorf("optionValue = %s, want %s", got, want)
	}
}
