package bbaegok.api;

import jakarta.persistence.EntityManager;
import jakarta.persistence.PersistenceContext;
import java.util.LinkedHashMap;
import java.util.Map;
import org.springframework.core.env.Environment;
import org.springframework.stereotype.Service;
import org.springframework.transaction.annotation.Transactional;

/**
 * Writes in an ordinary transaction, reads in a readOnly one; each answer
 * says which database server ran it, as that server sees itself (MariaDB:
 * its host name, the container's; PostgreSQL: its address on the data
 * network) and whether it is read-only (a replica), so a test can tell the
 * primary from the replica without trusting this app's own routing; on
 * MariaDB and MySQL, the connection's collation too.
 */
@Service
class NoteService {
  @PersistenceContext private EntityManager em;
  private final boolean postgres;

  NoteService(Environment env) {
    this.postgres = env.getProperty("spring.datasource.url", "").startsWith("jdbc:postgresql:");
  }

  @Transactional
  public Map<String, Object> write(String body) {
    Note note = new Note(body);
    em.persist(note);
    em.flush();
    Map<String, Object> answer = server();
    answer.put("id", note.id);
    return answer;
  }

  /** holdMs: the transaction holds its connection that long between its two queries (a test breaks the connection in between). */
  @Transactional(readOnly = true)
  public Map<String, Object> read(long id, long holdMs) throws InterruptedException {
    Map<String, Object> answer = server();
    Thread.sleep(holdMs);
    Note note = em.find(Note.class, id);
    answer.put("body", note == null ? null : note.body);
    return answer;
  }

  @Transactional(readOnly = true)
  public Map<String, Object> writeInReadOnly(String body) {
    em.persist(new Note(body));
    em.flush();
    return server();
  }

  private Map<String, Object> server() {
    Object server = em.createNativeQuery(postgres ? "SELECT host(inet_server_addr())" : "SELECT @@hostname").getSingleResult();
    Object readOnly = em.createNativeQuery(postgres ? "SELECT pg_is_in_recovery()" : "SELECT @@read_only = 1").getSingleResult();
    Map<String, Object> answer = new LinkedHashMap<>();
    answer.put("server", String.valueOf(server));
    answer.put("readOnlyServer", readOnly instanceof Boolean b ? b : ((Number) readOnly).intValue() == 1);
    // The connection's collation, as the server sees it (the program's URL names it for MySQL's Connector/J).
    if (!postgres) answer.put("collation", String.valueOf(em.createNativeQuery("SELECT @@collation_connection").getSingleResult()));
    return answer;
  }
}
