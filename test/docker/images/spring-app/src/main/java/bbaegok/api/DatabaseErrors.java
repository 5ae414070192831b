package bbaegok.api;

import java.util.Map;
import org.hibernate.JDBCException;
import org.hibernate.exception.JDBCConnectionException;
import org.springframework.boot.autoconfigure.condition.ConditionalOnProperty;
import org.springframework.dao.DataAccessResourceFailureException;
import org.springframework.http.HttpStatus;
import org.springframework.http.ResponseEntity;
import org.springframework.transaction.CannotCreateTransactionException;
import org.springframework.web.bind.annotation.ExceptionHandler;
import org.springframework.web.bind.annotation.RestControllerAdvice;

/**
 * What README "Read replicas" tells the team to add: a database that cannot
 * be reached answers 503. Without it, Spring Framework 6.2's
 * DefaultHandlerExceptionResolver takes any exception with an EOFException
 * among its causes for a client that went away (DisconnectedClientHelper),
 * and a JDBC driver reports a connection the database closed with one: the
 * request is answered 200 with an empty body, a write that never happened
 * included. PostgreSQL stopped by Docker (SIGINT, a fast shutdown) tells its
 * clients so instead (SQLSTATE 57P01), which Hibernate does not count as a
 * connection failure: it is one, and answers 503 here too.
 * BBAEGOK_TEST_RAW_DATABASE_ERRORS=true leaves this out, so a test can show why.
 */
@RestControllerAdvice
@ConditionalOnProperty(name = "BBAEGOK_TEST_RAW_DATABASE_ERRORS", havingValue = "false", matchIfMissing = true)
class DatabaseErrors {
  @ExceptionHandler({DataAccessResourceFailureException.class, CannotCreateTransactionException.class})
  ResponseEntity<Map<String, Object>> unavailable(Exception e) {
    return ResponseEntity.status(HttpStatus.SERVICE_UNAVAILABLE).body(Map.of("status", 503, "error", "the database cannot be reached"));
  }

  /** Hibernate's JDBC errors: a lost connection (SQLSTATE class 08) or a server ending it (57P01 admin shutdown, 57P02 crash, 57P03 starting). */
  @ExceptionHandler(JDBCException.class)
  ResponseEntity<Map<String, Object>> jdbc(JDBCException e) {
    String state = e.getSQLState() == null ? "" : e.getSQLState();
    if (e instanceof JDBCConnectionException || state.startsWith("08") || state.startsWith("57P")) return unavailable(e);
    throw e;
  }
}
