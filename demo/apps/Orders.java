import com.sun.net.httpserver.HttpServer;
import java.net.InetSocketAddress;

public class Orders {
    public static void main(String[] args) throws Exception {
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 8080), 0);
        server.createContext("/orders", exchange -> {
            byte[] body = "[]".getBytes();
            exchange.sendResponseHeaders(200, body.length);
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        server.start();
        System.out.println("orders: listening on 8080");
        long sum = 0;
        while (true) {
            for (int i = 0; i < 20_000_000; i++) sum += i % 7;
            Thread.sleep(1000);
        }
    }
}
