// An application's ZooKeeper registry client, reduced to what matters here: it opens
// HANDLES sessions (org.apache.zookeeper.ZooKeeper, the client every Java framework on
// top of ZooKeeper uses: Curator, Dubbo, ZkClient) and keeps them until it is killed.
// It has no retry logic of its own: a handle whose connection the server rejects
// reconnects by itself (ClientCnxn.SendThread), which is the loop the incident is about.
//
// Usage: java -cp <zookeeper class path>:<dir> ZkSessions HOST:PORT HANDLES
// It prints one line per session event on stdout, for the test to follow:
//   started <pid>
//   connected <handle> <session id>      (a session was established)
//   disconnected <handle>                 (an established connection was lost)
//   opened <handles>                      (every session has been started)
//
// The sessions are opened one after the other, each given up to 2 s to connect, as an
// application initialising its registry clients would. Opened all at once, they can
// all get in: ZooKeeper checks maxClientCnxns when it accepts a connection but counts
// the connection only once its selector thread has registered it, so a burst of
// connections passes the check together (seen with 3.8.0: 6 sessions for 4 slots).
//
// It is compiled at test time with the compiler module of the runtime
// (java -m jdk.compiler/com.sun.tools.javac.Main), so a JRE without javac is enough.

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;

public final class ZkSessions {
    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: ZkSessions HOST:PORT HANDLES");
            System.exit(2);
        }
        String connect = args[0];
        int handles = Integer.parseInt(args[1]);
        // Dubbo's and Curator's default session timeout.
        int sessionTimeoutMs = 60_000;
        say("started " + ProcessHandle.current().pid());
        ZooKeeper[] sessions = new ZooKeeper[handles];
        for (int i = 0; i < handles; i++) {
            final int handle = i;
            final ZooKeeper[] self = sessions;
            final CountDownLatch connected = new CountDownLatch(1);
            Watcher watcher = (WatchedEvent event) -> {
                if (event.getType() != Watcher.Event.EventType.None) {
                    return;
                }
                switch (event.getState()) {
                    case SyncConnected:
                        ZooKeeper zk = self[handle];
                        long id = zk == null ? 0 : zk.getSessionId();
                        say("connected " + handle + " 0x" + Long.toHexString(id));
                        connected.countDown();
                        break;
                    case Disconnected:
                        say("disconnected " + handle);
                        break;
                    default:
                        say(event.getState().toString().toLowerCase() + " " + handle);
                }
            };
            sessions[i] = new ZooKeeper(connect, sessionTimeoutMs, watcher);
            // A rejected session keeps trying in the background; go on after 2 s.
            connected.await(2, TimeUnit.SECONDS);
        }
        say("opened " + handles);
        // Keep the sessions until the process is killed, like an application would.
        Thread.currentThread().join();
    }
}
