// Package smtp sends e-mails to an SMTP server and tells a failure before the server
// accepted the message (safe to retry) from one after (outcome unknown).
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

// Send delivers m. An error wrapping ErrUncertain means the message may have been
// accepted; any other error means it was not.
func (s Mailer) Send(m Message) error {
	conn, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", s.Addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	host, _, _ := net.SplitHostPort(s.Addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("smtp RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	msg := strings.Join([]string{
		"From: " + s.From,
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
			return fmt.Errorf("smtp refused the message: %w", err) // a definite answer: not accepted
		}
		return fmt.Errorf("%w: %v", ErrUncertain, err)
	}
	_ = c.Quit()
	return nil
}
