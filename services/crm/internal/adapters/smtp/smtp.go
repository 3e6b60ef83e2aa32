// Package smtp sends e-mails to an SMTP server and tells a failure before the server
// accepted the message (safe to retry) from one after (outcome unknown), and a refusal
// that sending again cannot change (ErrRejected) from one that it may.
package smtp

import (
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// ErrUncertain reports that the message was transmitted but the server's verdict was
// lost: it may or may not have been accepted.
var ErrUncertain = errors.New("smtp: the server's answer to the message was lost")

// ErrRejected reports that the server refused the recipient or the message for good (a
// 5xx reply): the same message to the same address would be refused again. A refused
// sender is not ErrRejected: it is the sender's configuration, and every message waits
// for it to be fixed.
var ErrRejected = errors.New("smtp: the server refused the message for good")

// Mailer sends through one server.
type Mailer struct {
	Addr string
	From string
}

// Message is one e-mail.
type Message struct {
	To      string
	Subject string
	Body    string
	// ID becomes the Message-ID, so a receiving system can spot a duplicate.
	ID string
}

// Session is one SMTP connection that sends several messages in turn; it is not safe for
// concurrent use. The server parses and stores each message either way, but a connection
// and its greeting per message cost both sides more than the message.
type Session struct {
	conn net.Conn
	c    *smtp.Client
	from string
}

// Open connects to the server and reads its greeting.
func (s Mailer) Open() (*Session, error) {
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("smtp dial %s: %w", s.Addr, err)
	}
	host, _, _ := net.SplitHostPort(s.Addr)
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("smtp greeting: %w", err)
	}
	return &Session{conn: conn, c: c, from: s.From}, nil
}

// Send delivers m. An error wrapping ErrUncertain means the message may have been
// accepted; any other error means it was not.
func (ss *Session) Send(m Message) error {
	_ = ss.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := ss.c.Mail(ss.from); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := ss.c.Rcpt(m.To); err != nil {
		return fmt.Errorf("smtp RCPT TO: %w", permanent(err))
	}
	w, err := ss.c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	msg := strings.Join([]string{
		"From: " + ss.from,
		"To: " + m.To,
		"Subject: " + m.Subject,
		"Message-ID: <" + m.ID + "@orderflow>",
		"Date: " + time.Now().UTC().Format(time.RFC1123Z),
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"",
		m.Body,
	}, "\r\n")
	if _, err := w.Write([]byte(msg)); err != nil {
		return fmt.Errorf("smtp write: %w", err)
	}
	if err := w.Close(); err != nil {
		var reply *textproto.Error
		if errors.As(err, &reply) {
			return fmt.Errorf("smtp refused the message: %w", permanent(err)) // a definite answer: not accepted
		}
		return fmt.Errorf("%w: %v", ErrUncertain, err)
	}
	return nil
}

// permanent marks a 5xx reply as ErrRejected; other errors (4xx, the connection) are
// returned as they are.
func permanent(err error) error {
	var reply *textproto.Error
	if errors.As(err, &reply) && reply.Code >= 500 && reply.Code < 600 {
		return fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return err
}

// Close ends the session politely.
func (ss *Session) Close() {
	_ = ss.c.Quit()
	_ = ss.c.Close()
}
